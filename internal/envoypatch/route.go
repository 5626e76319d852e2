package envoypatch

import (
	"slices"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// RouteConfig applies the ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE
// patches of s to rc in place, in patch context pctx.
func RouteConfig(s *Set, pctx networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration, r *Record) {
	if s.Len() == 0 {
		return
	}
	for _, p := range s.by[networking.EnvoyFilter_ROUTE_CONFIGURATION] {
		if p.Op != opMerge || !ctxMatch(pctx, p) || !routeConfigMatch(pctx, rc, p) {
			continue
		}
		if err := Merge(rc, p.Value); err != nil {
			r.fail(p, err)
			continue
		}
		r.hit(p)
	}
	for i, vh := range rc.VirtualHosts {
		rc.VirtualHosts[i] = patchVirtualHost(s, pctx, rc, vh, r)
	}
	for _, p := range s.by[networking.EnvoyFilter_VIRTUAL_HOST] {
		if p.Op == opAdd && ctxMatch(pctx, p) && routeConfigMatch(pctx, rc, p) {
			rc.VirtualHosts = append(rc.VirtualHosts, proto.Clone(p.Value).(*routev3.VirtualHost))
			r.hit(p)
		}
	}
	rc.VirtualHosts, _ = removeAll(rc.VirtualHosts, func(vh *routev3.VirtualHost) bool { return vh == nil })
}

// patchVirtualHost returns vh patched, or nil when a patch removes it.
func patchVirtualHost(s *Set, pctx networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration, vh *routev3.VirtualHost, r *Record) *routev3.VirtualHost {
	for _, p := range s.by[networking.EnvoyFilter_VIRTUAL_HOST] {
		if !ctxMatch(pctx, p) || !routeConfigMatch(pctx, rc, p) || !virtualHostMatch(vh, p) {
			continue
		}
		switch p.Op {
		case opRemove:
			r.hit(p)
			return nil
		case opMerge:
			if err := Merge(vh, p.Value); err != nil {
				r.fail(p, err)
				continue
			}
			r.hit(p)
		case opReplace:
			vh = proto.Clone(p.Value).(*routev3.VirtualHost)
			r.hit(p)
		}
	}
	patchRoutes(s, pctx, rc, vh, r)
	return vh
}

func patchRoutes(s *Set, pctx networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration, vh *routev3.VirtualHost, r *Record) {
	for i := range vh.Routes {
		patchRoute(s, pctx, rc, vh, i, r)
	}
	for _, p := range s.by[networking.EnvoyFilter_HTTP_ROUTE] {
		if !ctxMatch(pctx, p) || !routeConfigMatch(pctx, rc, p) || !virtualHostMatch(vh, p) {
			continue
		}
		hasRoute := p.Match.GetRouteConfiguration().GetVhost().GetRoute() != nil
		match := func(rt *routev3.Route) bool { return rt != nil && routeMatch(rt, p) }
		value := func() *routev3.Route { return proto.Clone(p.Value).(*routev3.Route) }
		applied := false
		switch {
		case p.Op == opAdd || (p.Op == opInsertAfter && !hasRoute):
			vh.Routes, applied = append(vh.Routes, value()), true
		case (p.Op == opInsertBefore || p.Op == opInsertFirst) && !hasRoute:
			vh.Routes, applied = insertAt(vh.Routes, 0, value()), true
		case p.Op == opInsertAfter, p.Op == opInsertBefore:
			vh.Routes, applied = insertRelative(vh.Routes, match, value, p.Op == opInsertAfter)
		case p.Op == opInsertFirst:
			// with a route match: first in the virtual host, if the route is there
			if slices.ContainsFunc(vh.Routes, match) {
				vh.Routes, applied = insertAt(vh.Routes, 0, value()), true
			}
		}
		if applied {
			r.hit(p)
		}
	}
	vh.Routes, _ = removeAll(vh.Routes, func(rt *routev3.Route) bool { return rt == nil })
}

func patchRoute(s *Set, pctx networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration, vh *routev3.VirtualHost, i int, r *Record) {
	for _, p := range s.by[networking.EnvoyFilter_HTTP_ROUTE] {
		rt := vh.Routes[i]
		if rt == nil || !ctxMatch(pctx, p) || !routeConfigMatch(pctx, rc, p) || !virtualHostMatch(vh, p) || !routeMatch(rt, p) {
			continue
		}
		switch p.Op {
		case opRemove:
			r.hit(p)
			vh.Routes[i] = nil
			return
		case opMerge:
			if err := Merge(rt, p.Value); err != nil {
				r.fail(p, err)
				continue
			}
			r.hit(p)
		}
	}
}

// routeConfigMatch is Istio's: sidecars match the port (the route
// configuration's name, or the port of an inbound|PORT|... name) and name;
// gateways also the server's port name and gateway (from the
// https.PORT.PORTNAME.GATEWAY.NAMESPACE route name).
func routeConfigMatch(pctx networking.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration, p *Patch) bool {
	m := p.Match.GetRouteConfiguration()
	if m == nil {
		return true
	}
	if m.GetName() != "" && m.GetName() != rc.GetName() {
		return false
	}
	if pctx != Gateway {
		port := 0
		if rest, ok := strings.CutPrefix(rc.GetName(), "inbound|"); ok {
			n, _, _ := strings.Cut(rest, "|")
			port, _ = strconv.Atoi(n)
		} else {
			port, _ = strconv.Atoi(rc.GetName())
		}
		return m.GetPortNumber() == 0 || int(m.GetPortNumber()) == port
	}
	port, portName, gateway := parseGatewayRouteName(rc.GetName())
	if m.GetPortNumber() != 0 && int(m.GetPortNumber()) != port {
		return false
	}
	if m.GetPortName() != "" && m.GetPortName() != portName {
		return false
	}
	if m.GetGateway() != "" && m.GetGateway() != gateway {
		return false
	}
	return true
}

// parseGatewayRouteName parses http.PORT and https.PORT.PORTNAME.GATEWAY.NAMESPACE;
// gateway is "NAMESPACE/GATEWAY".
func parseGatewayRouteName(name string) (port int, portName, gateway string) {
	parts := strings.Split(name, ".")
	switch {
	case strings.HasPrefix(name, "http.") && len(parts) >= 2:
		port, _ = strconv.Atoi(parts[1])
	case strings.HasPrefix(name, "https.") && len(parts) >= 5:
		port, _ = strconv.Atoi(parts[1])
		portName = parts[2]
		gateway = parts[4] + "/" + parts[3]
	}
	return port, portName, gateway
}

func virtualHostMatch(vh *routev3.VirtualHost, p *Patch) bool {
	m := p.Match.GetRouteConfiguration().GetVhost()
	if m == nil {
		return true
	}
	if m.GetName() != "" && m.GetName() != vh.GetName() {
		return false
	}
	if m.GetDomainName() != "" && !slices.Contains(vh.GetDomains(), m.GetDomainName()) {
		return false
	}
	return true
}

func routeMatch(rt *routev3.Route, p *Patch) bool {
	m := p.Match.GetRouteConfiguration().GetVhost().GetRoute()
	if m == nil {
		return true
	}
	if m.GetName() != "" && m.GetName() != rt.GetName() {
		return false
	}
	switch m.GetAction() {
	case networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_ROUTE:
		return rt.GetRoute() != nil
	case networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_REDIRECT:
		return rt.GetRedirect() != nil
	case networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_DIRECT_RESPONSE:
		return rt.GetDirectResponse() != nil
	}
	return true
}
