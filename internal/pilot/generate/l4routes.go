package generate

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// l4Rule is a TCP route match conditioned on addresses: a filter chain
// whose prefix_ranges are dst and source_prefix_ranges src (nil: any).
type l4Rule struct {
	dst, src []*corev3.CidrRange
	to       []weightedCluster
}

// tcpRoutes resolves the tcp routes of vss for one listener port, as
// istiod's buildSidecarOutboundTCPFilterChainOpts does: routes are walked in
// order; a route with no match, or whose applicable match names no
// addresses, takes every other connection (main) and ends the walk; the
// applicable matches before it that name destinationSubnets or a
// sourceSubnet become rules. A rule's destinations are its
// destinationSubnets, else base (the service's own prefixes on a wildcard
// listener). main is nil when no route takes every connection.
//
// istiod ignores sourceSubnet; Mast matches it (see docs/decisions.md).
func (g *gen) tcpRoutes(vss []*model.VirtualService, port uint32, gateway string, base []*corev3.CidrRange) (rules []l4Rule, main []weightedCluster) {
	for _, vs := range vss {
		for _, r := range vs.Spec.GetTcp() {
			cs := g.routeDestinations(r.GetRoute(), vs.Namespace, port)
			if len(cs) == 0 {
				continue
			}
			if len(r.GetMatch()) == 0 {
				return rules, cs
			}
			var conditioned []l4Rule
			for _, m := range r.GetMatch() {
				if m.GetPort() != 0 && m.GetPort() != port {
					continue
				}
				if !g.sourceApplies(m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways(), vs.Namespace, gateway) {
					continue
				}
				if !hasSubnets(m) {
					return rules, cs
				}
				dst := base
				if len(m.GetDestinationSubnets()) > 0 {
					dst = cidrRanges(m.GetDestinationSubnets())
				}
				var src []*corev3.CidrRange
				if m.GetSourceSubnet() != "" {
					src = cidrRanges([]string{m.GetSourceSubnet()})
				}
				conditioned = append(conditioned, l4Rule{dst: dst, src: src, to: cs})
			}
			rules = append(rules, conditioned...)
		}
	}
	return rules, nil
}

// hasSubnets reports whether a TCP match is conditioned on addresses.
func hasSubnets(m *networking.L4MatchAttributes) bool {
	return len(m.GetDestinationSubnets()) > 0 || m.GetSourceSubnet() != ""
}

// l4Chains are the filter chains of rules and main on a listener: one per
// rule (but for a rule after one with the same destinations and no
// source), then — since Envoy narrows by destination before source — a chain
// to main for each rule's destinations that also names a source, so a
// connection there from another source still reaches main, then main's own
// chain restricted to base. A chain whose match an earlier one already has
// is left out (Envoy refuses a listener with two). filter makes a chain's
// terminal filter.
func l4Chains(rules []l4Rule, main []weightedCluster, base []*corev3.CidrRange, filter func([]weightedCluster) *listenerv3.Filter) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	seen := map[string]bool{}
	add := func(dst, src []*corev3.CidrRange, cs []weightedCluster) {
		fc := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{filter(cs)}}
		if len(dst) > 0 || len(src) > 0 {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{PrefixRanges: dst, SourcePrefixRanges: src}
		}
		if k := chainMatchKey(fc.FilterChainMatch); !seen[k] {
			seen[k] = true
			out = append(out, fc)
		}
	}
	// Envoy picks the most specific chain, not the first route: a rule is
	// unreachable once an earlier one takes its destinations from any source.
	anySource := map[string]bool{}
	for _, r := range rules {
		k := chainMatchKey(&listenerv3.FilterChainMatch{PrefixRanges: r.dst})
		if anySource[k] {
			continue
		}
		anySource[k] = len(r.src) == 0
		add(r.dst, r.src, r.to)
	}
	if main == nil {
		return out
	}
	for _, r := range rules {
		if len(r.src) > 0 && len(r.dst) > 0 {
			add(r.dst, nil, main)
		}
	}
	add(base, nil, main)
	return out
}

// tcpChains are the filter chains of one TCP service port on a sidecar
// listener (tcpRoutes, l4Chains); base restricts the service's chains to its
// prefixes on a wildcard listener (nil: any destination).
func (g *gen) tcpChains(svc *registry.Service, port uint32, stat string, base []*corev3.CidrRange) []*listenerv3.FilterChain {
	rules, main := g.tcpRoutes(g.scope.VirtualServicesFor(svc.Hostname), port, model.MeshGateway, base)
	if main == nil {
		main = []weightedCluster{{name: ClusterName("outbound", port, "", svc.Hostname), weight: 1}}
	}
	return l4Chains(rules, main, base, func(cs []weightedCluster) *listenerv3.Filter { return g.tcpProxy(stat, cs) })
}

// tcpDestinations are where a service port's TCP connections go when no
// address-conditioned rule takes them: the first tcp route of the service's
// VirtualServices that matches any connection, else the service's cluster.
func (g *gen) tcpDestinations(svc *registry.Service, port uint32) []weightedCluster {
	if _, main := g.tcpRoutes(g.scope.VirtualServicesFor(svc.Hostname), port, model.MeshGateway, nil); main != nil {
		return main
	}
	return []weightedCluster{{name: ClusterName("outbound", port, "", svc.Hostname), weight: 1}}
}

// chainMatchKey identifies a filter chain match by the fields Mast sets,
// each list sorted: two chains with one key would match the same
// connections.
func chainMatchKey(m *listenerv3.FilterChainMatch) string {
	cidrs := func(rs []*corev3.CidrRange) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.GetAddressPrefix()+"/"+itoa(r.GetPrefixLen().GetValue()))
		}
		slices.Sort(s)
		return strings.Join(s, ",")
	}
	sorted := func(in []string) string {
		s := slices.Clone(in)
		slices.Sort(s)
		return strings.Join(s, ",")
	}
	return strings.Join([]string{
		itoa(m.GetDestinationPort().GetValue()),
		cidrs(m.GetPrefixRanges()),
		sorted(m.GetServerNames()),
		m.GetTransportProtocol(),
		sorted(m.GetApplicationProtocols()),
		cidrs(m.GetSourcePrefixRanges()),
	}, "|")
}
