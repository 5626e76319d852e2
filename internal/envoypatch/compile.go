// Package envoypatch compiles the configPatches of Istio's EnvoyFilter into
// typed Envoy protos and applies them to generated xDS resources with
// Istio's semantics (pilot/pkg/networking/core/envoyfilter): the same
// applyTo kinds, operations, match fields and merge rules. It is pure: it
// knows nothing of push contexts or proxies beyond a patch context, so that
// validation (internal/config) and mastd (internal/pilot/envoyfilter) share it.
package envoypatch

import (
	"fmt"
	"regexp"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"
)

// Patch is one compiled configPatches entry.
type Patch struct {
	Filter  string // "namespace/name" of the EnvoyFilter
	Index   int    // its index in spec.configPatches
	ApplyTo networking.EnvoyFilter_ApplyTo
	Op      networking.EnvoyFilter_Patch_Operation
	Match   *networking.EnvoyFilter_EnvoyConfigObjectMatch // never nil
	// Value is patch.value as the typed proto applyTo names (Listener,
	// FilterChain, Filter, HttpFilter, RouteConfiguration, VirtualHost,
	// Route, Cluster, ListenerFilter); nil for REMOVE. Never modified:
	// operations insert clones.
	Value proto.Message

	proxyVersion *regexp.Regexp
}

// String names the patch as messages do: "EnvoyFilter ns/name configPatches[i] (HTTP_FILTER MERGE)".
func (p *Patch) String() string {
	return fmt.Sprintf("EnvoyFilter %s configPatches[%d] (%s %s)", p.Filter, p.Index, p.ApplyTo, p.Op)
}

// Context is the patch context of p's match ("" fields default to ANY).
func (p *Patch) Context() networking.EnvoyFilter_PatchContext { return p.Match.GetContext() }

// Problem is one compile error, with the field it is about (relative to spec).
type Problem struct {
	Field string
	Err   error
}

func (p Problem) Error() string { return p.Field + ": " + p.Err.Error() }

// Compile turns spec's configPatches into Patches, in order. A patch with
// a problem is left out and reported; the others are kept. name is
// "namespace/name". Unknown JSON fields in a value are a problem (as in
// Istio's validation): nothing in a patch is dropped silently.
func Compile(name string, spec *networking.EnvoyFilter) ([]*Patch, []Problem) {
	var out []*Patch
	var probs []Problem
	for i, cp := range spec.GetConfigPatches() {
		field := fmt.Sprintf("configPatches[%d]", i)
		p, err := compileOne(cp)
		if err != nil {
			probs = append(probs, Problem{Field: field + err.field, Err: err.err})
			continue
		}
		p.Filter, p.Index = name, i
		out = append(out, p)
	}
	return out, probs
}

type fieldErr struct {
	field string
	err   error
}

func ferr(field, format string, args ...any) *fieldErr {
	return &fieldErr{field: field, err: fmt.Errorf(format, args...)}
}

// operations lists the operations Istio applies for each applyTo.
var operations = map[networking.EnvoyFilter_ApplyTo][]networking.EnvoyFilter_Patch_Operation{
	networking.EnvoyFilter_LISTENER:            {opMerge, opAdd, opRemove},
	networking.EnvoyFilter_FILTER_CHAIN:        {opMerge, opAdd, opRemove},
	networking.EnvoyFilter_NETWORK_FILTER:      {opMerge, opAdd, opRemove, opInsertBefore, opInsertAfter, opInsertFirst, opReplace},
	networking.EnvoyFilter_HTTP_FILTER:         {opMerge, opAdd, opRemove, opInsertBefore, opInsertAfter, opInsertFirst, opReplace},
	networking.EnvoyFilter_LISTENER_FILTER:     {opAdd, opRemove, opInsertBefore, opInsertAfter, opInsertFirst, opReplace},
	networking.EnvoyFilter_ROUTE_CONFIGURATION: {opMerge},
	networking.EnvoyFilter_VIRTUAL_HOST:        {opMerge, opAdd, opRemove, opReplace},
	networking.EnvoyFilter_HTTP_ROUTE:          {opMerge, opAdd, opRemove, opInsertBefore, opInsertAfter, opInsertFirst},
	networking.EnvoyFilter_CLUSTER:             {opMerge, opAdd, opRemove, opReplace},
}

const (
	opMerge        = networking.EnvoyFilter_Patch_MERGE
	opAdd          = networking.EnvoyFilter_Patch_ADD
	opRemove       = networking.EnvoyFilter_Patch_REMOVE
	opInsertBefore = networking.EnvoyFilter_Patch_INSERT_BEFORE
	opInsertAfter  = networking.EnvoyFilter_Patch_INSERT_AFTER
	opInsertFirst  = networking.EnvoyFilter_Patch_INSERT_FIRST
	opReplace      = networking.EnvoyFilter_Patch_REPLACE
)

func compileOne(cp *networking.EnvoyFilter_EnvoyConfigObjectPatch) (*Patch, *fieldErr) {
	applyTo, op := cp.GetApplyTo(), cp.GetPatch().GetOperation()
	if cp.GetPatch() == nil {
		return nil, ferr(".patch", "missing")
	}
	ops, ok := operations[applyTo]
	if !ok {
		return nil, ferr(".applyTo", "%s is not supported by Mast (it generates no such resource for EnvoyFilter to patch)", applyTo)
	}
	if !containsOp(ops, op) {
		return nil, ferr(".patch.operation", "%s is not an operation on %s (allowed: %v)", op, applyTo, ops)
	}
	if cp.GetPatch().GetFilterClass() != networking.EnvoyFilter_Patch_UNSPECIFIED {
		return nil, ferr(".patch.filterClass", "not supported (a WasmPlugin-era ordering hint; use INSERT_BEFORE/INSERT_AFTER)")
	}
	m := cp.GetMatch()
	if m == nil {
		m = &networking.EnvoyFilter_EnvoyConfigObjectMatch{}
	}
	if err := checkMatch(applyTo, m); err != nil {
		return nil, err
	}
	p := &Patch{ApplyTo: applyTo, Op: op, Match: m}
	if re := m.GetProxy().GetProxyVersion(); re != "" {
		r, err := regexp.Compile(re)
		if err != nil {
			return nil, ferr(".match.proxy.proxyVersion", "%v", err)
		}
		p.proxyVersion = r
	}
	v := cp.GetPatch().GetValue()
	switch {
	case op == opRemove:
		// a value is ignored on REMOVE, as in Istio
	case v == nil:
		return nil, ferr(".patch.value", "missing for %s", op)
	default:
		msg, err := buildValue(applyTo, v)
		if err != nil {
			return nil, ferr(".patch.value", "%v", err)
		}
		p.Value = msg
		if err := checkValue(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func containsOp(ops []networking.EnvoyFilter_Patch_Operation, op networking.EnvoyFilter_Patch_Operation) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

// checkMatch refuses match fields that cannot apply to applyTo, as Istio's validation does.
func checkMatch(applyTo networking.EnvoyFilter_ApplyTo, m *networking.EnvoyFilter_EnvoyConfigObjectMatch) *fieldErr {
	switch applyTo {
	case networking.EnvoyFilter_LISTENER, networking.EnvoyFilter_FILTER_CHAIN, networking.EnvoyFilter_NETWORK_FILTER,
		networking.EnvoyFilter_HTTP_FILTER, networking.EnvoyFilter_LISTENER_FILTER:
		if m.GetRouteConfiguration() != nil || m.GetCluster() != nil {
			return ferr(".match", "%s takes a listener match, not a routeConfiguration or cluster match", applyTo)
		}
		if applyTo == networking.EnvoyFilter_HTTP_FILTER {
			if fn := m.GetListener().GetFilterChain().GetFilter().GetName(); fn != "" && fn != HCMName {
				return ferr(".match.listener.filterChain.filter.name", "HTTP filters live in %s, not %q", HCMName, fn)
			}
		}
	case networking.EnvoyFilter_ROUTE_CONFIGURATION, networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE:
		if m.GetListener() != nil || m.GetCluster() != nil {
			return ferr(".match", "%s takes a routeConfiguration match, not a listener or cluster match", applyTo)
		}
	case networking.EnvoyFilter_CLUSTER:
		if m.GetListener() != nil || m.GetRouteConfiguration() != nil {
			return ferr(".match", "CLUSTER takes a cluster match, not a listener or routeConfiguration match")
		}
	}
	return nil
}

// checkValue refuses values an operation cannot use.
func checkValue(p *Patch) *fieldErr {
	needName := p.Op == opAdd || p.Op == opInsertBefore || p.Op == opInsertAfter || p.Op == opInsertFirst || p.Op == opReplace
	switch v := p.Value.(type) {
	case *hcmv3.HttpFilter:
		if needName && v.GetName() == "" {
			return ferr(".patch.value.name", "missing: an added HTTP filter needs a name")
		}
	case *listenerv3.Filter:
		if needName && v.GetName() == "" {
			return ferr(".patch.value.name", "missing: an added network filter needs a name")
		}
	case *listenerv3.ListenerFilter:
		if needName && v.GetName() == "" {
			return ferr(".patch.value.name", "missing: an added listener filter needs a name")
		}
	case *listenerv3.Listener:
		if p.Op == opAdd && v.GetName() == "" {
			return ferr(".patch.value.name", "missing: an added listener needs a name")
		}
	case *clusterv3.Cluster:
		if (p.Op == opAdd || p.Op == opReplace) && v.GetName() == "" {
			return ferr(".patch.value.name", "missing: an added cluster needs a name")
		}
	case *routev3.VirtualHost:
		if (p.Op == opAdd || p.Op == opReplace) && v.GetName() == "" {
			return ferr(".patch.value.name", "missing: an added virtual host needs a name")
		}
	}
	return nil
}

// HCMName is the HTTP connection manager's filter name.
const HCMName = "envoy.filters.network.http_connection_manager"

// newValue returns the empty typed message applyTo patches.
func newValue(applyTo networking.EnvoyFilter_ApplyTo) proto.Message {
	switch applyTo {
	case networking.EnvoyFilter_LISTENER:
		return &listenerv3.Listener{}
	case networking.EnvoyFilter_FILTER_CHAIN:
		return &listenerv3.FilterChain{}
	case networking.EnvoyFilter_NETWORK_FILTER:
		return &listenerv3.Filter{}
	case networking.EnvoyFilter_HTTP_FILTER:
		return &hcmv3.HttpFilter{}
	case networking.EnvoyFilter_LISTENER_FILTER:
		return &listenerv3.ListenerFilter{}
	case networking.EnvoyFilter_ROUTE_CONFIGURATION:
		return &routev3.RouteConfiguration{}
	case networking.EnvoyFilter_VIRTUAL_HOST:
		return &routev3.VirtualHost{}
	case networking.EnvoyFilter_HTTP_ROUTE:
		return &routev3.Route{}
	case networking.EnvoyFilter_CLUSTER:
		return &clusterv3.Cluster{}
	}
	return nil
}

// buildValue converts a patch value (Envoy's JSON as a Struct) into the
// typed proto of applyTo. typed_config Anys name their type with "@type";
// the type must be one mastd knows (types.go).
func buildValue(applyTo networking.EnvoyFilter_ApplyTo, v *structpb.Struct) (proto.Message, error) {
	js, err := protojson.Marshal(v)
	if err != nil {
		return nil, err
	}
	msg := newValue(applyTo)
	if err := (protojson.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(js, msg); err != nil {
		return nil, fmt.Errorf("not a valid %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	return msg, nil
}
