// Package rlaction turns Envoy's rate_limits actions (config.route.v3
// RateLimit) into the descriptors of one request, for the ratelimit and
// local_ratelimit filters.
package rlaction

import (
	"fmt"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// Entry is one descriptor entry.
type Entry struct{ Key, Value string }

// kind of action.
type kind uint8

const (
	genericKey kind = iota
	requestHeader
	remoteAddress
)

type action struct {
	kind         kind
	key, value   string // generic_key: key/value; request_headers: descriptor key / header name
	skipIfAbsent bool
}

// Descriptor builds one descriptor from its actions.
type Descriptor struct{ actions []action }

// AddGenericKey appends a generic_key action (descriptor_key key, default
// "generic_key"; descriptor_value value).
func (d *Descriptor) AddGenericKey(key, value string) {
	if key == "" {
		key = "generic_key"
	}
	d.actions = append(d.actions, action{kind: genericKey, key: key, value: value})
}

// AddRequestHeader appends a request_headers action.
func (d *Descriptor) AddRequestHeader(descriptorKey, header string, skipIfAbsent bool) {
	d.actions = append(d.actions, action{kind: requestHeader, key: descriptorKey, value: lower(header), skipIfAbsent: skipIfAbsent})
}

// AddRemoteAddress appends a remote_address action.
func (d *Descriptor) AddRemoteAddress() {
	d.actions = append(d.actions, action{kind: remoteAddress, key: "remote_address"})
}

// Unsupported is the error for an action the proxy does not honour.
func Unsupported(path, action string) error {
	return fmt.Errorf("%s: action %s: not supported (generic_key, request_headers and remote_address are)", path, action)
}

// Field numbers of config.route.v3.RateLimit and its Action.
const (
	rlStage             = 1
	rlDisableKey        = 2
	rlActions           = 3
	rlLimit             = 4
	rlHitsAddend        = 5
	rlApplyOnStreamDone = 6
	rlXRateLimitOption  = 7

	actRequestHeaders = 3
	actRemoteAddress  = 4
	actGenericKey     = 5

	gkDescriptorValue = 1
	gkDescriptorKey   = 2
	gkDefaultValue    = 3

	rhHeaderName    = 1
	rhDescriptorKey = 2
	rhSkipIfAbsent  = 3

	valueField = 1 // UInt32Value.value
)

// ParseWire compiles decoded config.route.v3.RateLimit messages (of any
// pbwire table that holds the type); errors name the field of anything not
// honoured.
func ParseWire(field string, rls []*pbwire.Msg) ([]Descriptor, error) {
	out := make([]Descriptor, 0, len(rls))
	for i, rl := range rls {
		p := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case rl.Sub(rlStage).U32(valueField) != 0:
			return nil, fmt.Errorf("%s.stage: only stage 0 is supported", p)
		case rl.Str(rlDisableKey) != "":
			return nil, fmt.Errorf("%s.disable_key: not supported (no runtime)", p)
		case rl.Has(rlLimit):
			return nil, fmt.Errorf("%s.limit: not supported", p)
		case rl.Has(rlHitsAddend):
			return nil, fmt.Errorf("%s.hits_addend: not supported", p)
		case rl.Bool(rlApplyOnStreamDone):
			return nil, fmt.Errorf("%s.apply_on_stream_done: not supported", p)
		case rl.I32(rlXRateLimitOption) != 0:
			return nil, fmt.Errorf("%s.x_ratelimit_option: not supported", p)
		case !rl.Has(rlActions):
			return nil, fmt.Errorf("%s.actions: empty", p)
		}
		var d Descriptor
		for j, a := range rl.Subs(rlActions) {
			ap := fmt.Sprintf("%s.actions[%d]", p, j)
			switch {
			case a.Has(actGenericKey):
				g := a.Sub(actGenericKey)
				if g.Str(gkDefaultValue) != "" {
					return nil, fmt.Errorf("%s.generic_key.default_value: not supported", ap)
				}
				if g.Str(gkDescriptorValue) == "" {
					return nil, fmt.Errorf("%s.generic_key.descriptor_value: empty", ap)
				}
				d.AddGenericKey(g.Str(gkDescriptorKey), g.Str(gkDescriptorValue))
			case a.Has(actRequestHeaders):
				h := a.Sub(actRequestHeaders)
				if h.Str(rhHeaderName) == "" || h.Str(rhDescriptorKey) == "" {
					return nil, fmt.Errorf("%s.request_headers: header_name and descriptor_key are required", ap)
				}
				d.AddRequestHeader(h.Str(rhDescriptorKey), h.Str(rhHeaderName), h.Bool(rhSkipIfAbsent))
			case a.Has(actRemoteAddress):
				d.AddRemoteAddress()
			default:
				name := "none"
				if set := a.Set(); len(set) > 0 {
					name = set[0]
				}
				return nil, Unsupported(ap, name)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Build returns the descriptor's entries for r, or false when an action
// produced nothing (a missing header without skip_if_absent, or no client
// address): Envoy then sends no descriptor for this rate limit.
func (d *Descriptor) Build(r *filter.Request, buf []Entry) ([]Entry, bool) {
	out := buf[:0]
	for _, a := range d.actions {
		switch a.kind {
		case genericKey:
			out = append(out, Entry{a.key, a.value})
		case requestHeader:
			v, ok := r.Header(a.value)
			if !ok {
				if a.skipIfAbsent {
					continue
				}
				return nil, false
			}
			out = append(out, Entry{a.key, v})
		case remoteAddress:
			if !r.RemoteIP.IsValid() {
				return nil, false
			}
			out = append(out, Entry{a.key, r.RemoteIP.String()})
		}
	}
	return out, len(out) > 0
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
