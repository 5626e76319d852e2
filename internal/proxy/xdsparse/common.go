// Package xdsparse turns Envoy xDS v3 resources into the proxy's small
// internal types. It validates at this edge: whatever it cannot honour is an
// error naming the resource and field, which the xDS client sends back as a
// NACK. Route tables come out compiled, ready for allocation-free matching.
package xdsparse

import (
	"fmt"
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// hostname is what %HOSTNAME% writes: the machine's (the pod's) name.
func hostname() string {
	h, _ := os.Hostname()
	return h
}

func parseHeaderValueOps(ops []*corev3.HeaderValueOption, field string) ([]HeaderValueOp, error) {
	var out []HeaderValueOp
	for i, o := range ops {
		h := o.GetHeader()
		name := strings.ToLower(h.GetKey())
		if name == "" || !validHeaderName(name) {
			return nil, fmt.Errorf("%s[%d]: invalid header name %q", field, i, h.GetKey())
		}
		if strings.HasPrefix(name, ":") && name != ":authority" {
			return nil, fmt.Errorf("%s[%d]: pseudo-header %q cannot be modified", field, i, name)
		}
		if name == ":authority" {
			name = "host"
		}
		v := h.GetValue()
		if v == "" && len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("%s[%d] %q: value contains CR, LF or NUL", field, i, name)
		}
		// Envoy formats header values: %VAR% is a command operator and %%
		// a literal percent sign; an operator headers cannot carry is refused.
		f, lit, err := accesslog.ParseHeaderValue(v)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] %q: value %q: %w", field, i, name, v, err)
		}
		if f != nil {
			f.SetHostname(hostname())
		}
		v = lit
		op := HeaderValueOp{Name: name, Value: v, Format: f, Append: true}
		if o.GetAppend() != nil {
			op.Append = o.GetAppend().GetValue()
		}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			if o.GetAppend() == nil {
				op.Append = true
			}
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			op.Append, op.IfAbsent = false, true
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			op.Append = false
		}
		out = append(out, op)
	}
	return out, nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ':' && i == 0 {
			continue
		}
		if !IsTokenChar(c) {
			return false
		}
	}
	return true
}

// IsTokenChar reports whether c may appear in an RFC 9110 token.
func IsTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
