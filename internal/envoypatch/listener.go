package envoypatch

import (
	"fmt"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"
)

// The names of the capture listeners, whose filter chains stand for ports.
const (
	VirtualInbound  = "virtualInbound"
	VirtualOutbound = "virtualOutbound"
)

// Listeners applies the LISTENER, LISTENER_FILTER, FILTER_CHAIN,
// NETWORK_FILTER and HTTP_FILTER patches of s to ls in place, all in patch
// context pctx, and the ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE
// patches to route configurations inlined in HTTP connection managers.
// LISTENER ADDs are appended unless skipAdds (Istio adds listeners in the
// SIDECAR_OUTBOUND and GATEWAY contexts only). Removed listeners are
// dropped from the result.
func Listeners(s *Set, pctx networking.EnvoyFilter_PatchContext, ls []*listenerv3.Listener, skipAdds bool, r *Record) []*listenerv3.Listener {
	if s.Len() == 0 {
		return ls
	}
	for _, l := range ls {
		patchListener(s, pctx, l, r)
	}
	if !skipAdds {
		for _, p := range s.by[networking.EnvoyFilter_LISTENER] {
			if p.Op != opAdd || !ctxMatch(pctx, p) {
				continue
			}
			if p.Context() == Any && pctx != SidecarOutbound && pctx != Gateway {
				continue
			}
			ls = append(ls, proto.Clone(p.Value).(*listenerv3.Listener))
			r.hit(p)
		}
	}
	ls, _ = removeAll(ls, func(l *listenerv3.Listener) bool { return l.Name == "" })
	return ls
}

func patchListener(s *Set, pctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, r *Record) {
	for _, p := range s.by[networking.EnvoyFilter_LISTENER] {
		if !ctxMatch(pctx, p) || !listenerMatch(l, p) {
			continue
		}
		switch p.Op {
		case opRemove:
			r.hit(p)
			l.Name = "" // dropped by Listeners
			return
		case opMerge:
			if err := Merge(l, p.Value); err != nil {
				r.fail(p, err)
				continue
			}
			r.hit(p)
		}
	}
	patchListenerFilters(s, pctx, l, r)
	patchFilterChains(s, pctx, l, r)
}

func listenerMatch(l *listenerv3.Listener, p *Patch) bool {
	m := p.Match.GetListener()
	if m == nil {
		return true
	}
	if m.GetName() != "" && m.GetName() != l.GetName() {
		return false
	}
	// The capture listeners stand for every port: below the listener
	// level, portNumber matches their filter chains' destination port.
	if p.ApplyTo != networking.EnvoyFilter_LISTENER && (l.GetName() == VirtualInbound || l.GetName() == VirtualOutbound) {
		return true
	}
	if m.GetPortNumber() != 0 && l.GetAddress().GetSocketAddress().GetPortValue() != m.GetPortNumber() {
		return false
	}
	return true
}

func patchListenerFilters(s *Set, pctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, r *Record) {
	for _, p := range s.by[networking.EnvoyFilter_LISTENER_FILTER] {
		if !ctxMatch(pctx, p) || !listenerMatch(l, p) {
			continue
		}
		name := p.Match.GetListener().GetListenerFilter()
		match := func(f *listenerv3.ListenerFilter) bool { return f.GetName() == name }
		value := func() *listenerv3.ListenerFilter { return proto.Clone(p.Value).(*listenerv3.ListenerFilter) }
		applied := false
		switch {
		case p.Op == opAdd || (p.Op == opInsertAfter && name == ""):
			l.ListenerFilters, applied = append(l.ListenerFilters, value()), true
		case p.Op == opInsertFirst || (p.Op == opInsertBefore && name == ""):
			l.ListenerFilters, applied = insertAt(l.ListenerFilters, 0, value()), true
		case name == "":
			// REPLACE and REMOVE need a listenerFilter to match
		case p.Op == opInsertAfter, p.Op == opInsertBefore:
			l.ListenerFilters, applied = insertRelative(l.ListenerFilters, match, value, p.Op == opInsertAfter)
		case p.Op == opReplace:
			l.ListenerFilters, applied = replaceFirst(l.ListenerFilters, match, value)
		case p.Op == opRemove:
			l.ListenerFilters, applied = removeAll(l.ListenerFilters, match)
		}
		if applied {
			r.hit(p)
		}
	}
}

func patchFilterChains(s *Set, pctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, r *Record) {
	for _, fc := range l.FilterChains {
		patchFilterChain(s, pctx, l, fc, r)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil && fc.Filters != nil {
		patchFilterChain(s, pctx, l, fc, r)
		if fc.Filters == nil {
			l.DefaultFilterChain = nil
		}
	}
	for _, p := range s.by[networking.EnvoyFilter_FILTER_CHAIN] {
		if p.Op == opAdd && ctxMatch(pctx, p) && listenerMatch(l, p) {
			l.FilterChains = append(l.FilterChains, proto.Clone(p.Value).(*listenerv3.FilterChain))
			r.hit(p)
		}
	}
	l.FilterChains, _ = removeAll(l.FilterChains, func(fc *listenerv3.FilterChain) bool { return fc.Filters == nil })
}

func patchFilterChain(s *Set, pctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, fc *listenerv3.FilterChain, r *Record) {
	if fc.Filters == nil {
		return
	}
	for _, p := range s.by[networking.EnvoyFilter_FILTER_CHAIN] {
		if !ctxMatch(pctx, p) || !listenerMatch(l, p) || !filterChainMatch(l, fc, p) {
			continue
		}
		switch p.Op {
		case opRemove:
			r.hit(p)
			fc.Filters = nil // dropped by patchFilterChains
			return
		case opMerge:
			if err := mergeFilterChain(fc, p.Value.(*listenerv3.FilterChain)); err != nil {
				r.fail(p, err)
				continue
			}
			r.hit(p)
		}
	}
	patchNetworkFilters(s, pctx, l, fc, r)
}

// mergeFilterChain merges v into fc; a transport socket of the same name
// is merged inside its typed_config, as Istio does.
func mergeFilterChain(fc, v *listenerv3.FilterChain) error {
	ts, vts := fc.GetTransportSocket(), v.GetTransportSocket()
	if ts == nil || vts == nil || ts.GetName() != vts.GetName() || ts.GetTypedConfig() == nil || vts.GetTypedConfig() == nil {
		return Merge(fc, v)
	}
	merged, err := mergeAny(ts.GetTypedConfig(), vts.GetTypedConfig())
	if err != nil {
		return fmt.Errorf("transport_socket %s: %w", ts.GetName(), err)
	}
	rest := proto.Clone(v).(*listenerv3.FilterChain)
	rest.TransportSocket = nil
	if err := Merge(fc, rest); err != nil {
		return err
	}
	fc.TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: merged}
	return nil
}

func filterChainMatch(l *listenerv3.Listener, fc *listenerv3.FilterChain, p *Patch) bool {
	lm := p.Match.GetListener()
	if lm == nil {
		return true
	}
	virtual := l.GetName() == VirtualInbound || l.GetName() == VirtualOutbound
	if virtual && lm.GetPortNumber() > 0 && fc.GetFilterChainMatch().GetDestinationPort().GetValue() != lm.GetPortNumber() {
		return false
	}
	m := lm.GetFilterChain()
	if m == nil {
		return true
	}
	fcm := fc.GetFilterChainMatch()
	if m.GetName() != "" && m.GetName() != fc.GetName() {
		return false
	}
	if m.GetSni() != "" && !slices.Contains(fcm.GetServerNames(), m.GetSni()) {
		return false
	}
	if m.GetTransportProtocol() != "" && fcm.GetTransportProtocol() != m.GetTransportProtocol() {
		return false
	}
	if m.GetApplicationProtocols() != "" {
		for _, ap := range strings.Split(m.GetApplicationProtocols(), ",") {
			if !slices.Contains(fcm.GetApplicationProtocols(), ap) {
				return false
			}
		}
	}
	if m.GetDestinationPort() > 0 && fcm.GetDestinationPort().GetValue() != m.GetDestinationPort() {
		return false
	}
	return true
}

// networkFilterName is the filter a patch's match names, "" for any.
func networkFilterName(p *Patch) string {
	return p.Match.GetListener().GetFilterChain().GetFilter().GetName()
}

func patchNetworkFilters(s *Set, pctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, fc *listenerv3.FilterChain, r *Record) {
	for _, p := range s.by[networking.EnvoyFilter_NETWORK_FILTER] {
		if !ctxMatch(pctx, p) || !listenerMatch(l, p) || !filterChainMatch(l, fc, p) {
			continue
		}
		name := networkFilterName(p)
		match := func(f *listenerv3.Filter) bool { return f.GetName() == name }
		value := func() *listenerv3.Filter { return proto.Clone(p.Value).(*listenerv3.Filter) }
		applied := false
		switch {
		case p.Op == opMerge:
			continue // below, per filter
		case p.Op == opAdd || (p.Op == opInsertAfter && name == ""):
			fc.Filters, applied = append(fc.Filters, value()), true
		case p.Op == opInsertFirst || (p.Op == opInsertBefore && name == ""):
			fc.Filters, applied = insertAt(fc.Filters, 0, value()), true
		case name == "":
			// REPLACE and REMOVE need a filter to match
		case p.Op == opInsertAfter, p.Op == opInsertBefore:
			fc.Filters, applied = insertRelative(fc.Filters, match, value, p.Op == opInsertAfter)
		case p.Op == opReplace:
			fc.Filters, applied = replaceFirst(fc.Filters, match, value)
		case p.Op == opRemove:
			fc.Filters, applied = removeAll(fc.Filters, match)
		}
		if applied {
			r.hit(p)
		}
	}
	for _, f := range fc.Filters {
		patchNetworkFilter(s, pctx, l, fc, f, r)
	}
}

func patchNetworkFilter(s *Set, pctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, fc *listenerv3.FilterChain, f *listenerv3.Filter, r *Record) {
	for _, p := range s.by[networking.EnvoyFilter_NETWORK_FILTER] {
		if p.Op != opMerge || !ctxMatch(pctx, p) || !listenerMatch(l, p) || !filterChainMatch(l, fc, p) {
			continue
		}
		if n := networkFilterName(p); n != "" && n != f.GetName() {
			continue
		}
		v := p.Value.(*listenerv3.Filter)
		if err := mergeNamedTyped(&f.Name, f.GetTypedConfig(), v.GetName(), v.GetTypedConfig(), func(a *anypb.Any) {
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
		}); err != nil {
			r.fail(p, fmt.Errorf("filter %s: %w", f.GetName(), err))
			continue
		}
		r.hit(p)
	}
	if f.GetName() == HCMName && s.Has(networking.EnvoyFilter_HTTP_FILTER, networking.EnvoyFilter_ROUTE_CONFIGURATION,
		networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE) {
		patchHCM(s, pctx, l, fc, f, r)
	}
}

// mergeNamedTyped is a filter MERGE as Istio does it: a name in the patch
// renames the filter; a typed_config in the patch is merged into the
// filter's (both unpacked), and must be of the same type.
func mergeNamedTyped(name *string, have *anypb.Any, newName string, patch *anypb.Any, set func(*anypb.Any)) error {
	if have == nil {
		return fmt.Errorf("has no typed_config to merge into")
	}
	if patch != nil {
		if patch.GetTypeUrl() != have.GetTypeUrl() {
			return fmt.Errorf("typed_config is %s, the patch's is %s", have.GetTypeUrl(), patch.GetTypeUrl())
		}
		merged, err := mergeAny(have, patch)
		if err != nil {
			return err
		}
		set(merged)
	}
	if newName != "" {
		*name = newName
	}
	return nil
}

// patchHCM applies the HTTP_FILTER patches, and the route patches to an
// inline route configuration, inside an HTTP connection manager filter.
func patchHCM(s *Set, pctx networking.EnvoyFilter_PatchContext, l *listenerv3.Listener, fc *listenerv3.FilterChain, f *listenerv3.Filter, r *Record) {
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return
	}
	for _, p := range s.by[networking.EnvoyFilter_HTTP_FILTER] {
		if !ctxMatch(pctx, p) || !listenerMatch(l, p) || !filterChainMatch(l, fc, p) {
			continue
		}
		if n := networkFilterName(p); n != "" && n != HCMName {
			continue
		}
		sub := p.Match.GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName()
		match := func(h *hcmv3.HttpFilter) bool { return h.GetName() == sub }
		value := func() *hcmv3.HttpFilter { return proto.Clone(p.Value).(*hcmv3.HttpFilter) }
		applied := false
		switch {
		case p.Op == opMerge:
			continue // below, per filter
		case p.Op == opAdd || (p.Op == opInsertAfter && sub == ""):
			hcm.HttpFilters, applied = append(hcm.HttpFilters, value()), true
		case p.Op == opInsertFirst || (p.Op == opInsertBefore && sub == ""):
			hcm.HttpFilters, applied = insertAt(hcm.HttpFilters, 0, value()), true
		case sub == "":
			// REPLACE and REMOVE need a subFilter to match
		case p.Op == opInsertAfter, p.Op == opInsertBefore:
			hcm.HttpFilters, applied = insertRelative(hcm.HttpFilters, match, value, p.Op == opInsertAfter)
		case p.Op == opReplace:
			hcm.HttpFilters, applied = replaceFirst(hcm.HttpFilters, match, value)
		case p.Op == opRemove:
			hcm.HttpFilters, applied = removeAll(hcm.HttpFilters, match)
		}
		if applied {
			r.hit(p)
		}
	}
	for _, h := range hcm.HttpFilters {
		for _, p := range s.by[networking.EnvoyFilter_HTTP_FILTER] {
			if p.Op != opMerge || !ctxMatch(pctx, p) || !listenerMatch(l, p) || !filterChainMatch(l, fc, p) {
				continue
			}
			m := p.Match.GetListener().GetFilterChain().GetFilter()
			if (m.GetName() != "" && m.GetName() != HCMName) || (m.GetSubFilter().GetName() != "" && m.GetSubFilter().GetName() != h.GetName()) {
				continue
			}
			v := p.Value.(*hcmv3.HttpFilter)
			if err := mergeNamedTyped(&h.Name, h.GetTypedConfig(), v.GetName(), v.GetTypedConfig(), func(a *anypb.Any) {
				h.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}
			}); err != nil {
				r.fail(p, fmt.Errorf("http filter %s: %w", h.GetName(), err))
				continue
			}
			r.hit(p)
		}
	}
	if rc := hcm.GetRouteConfig(); rc != nil {
		RouteConfig(s, pctx, rc, r)
	}
	a, err := anypb.New(hcm)
	if err != nil {
		return
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
}
