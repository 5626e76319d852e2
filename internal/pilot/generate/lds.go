package generate

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// Filter and listener-filter names, as Envoy and Istio name them.
const (
	hcmFilterName        = "envoy.filters.network.http_connection_manager"
	tcpProxyFilterName   = "envoy.filters.network.tcp_proxy"
	routerFilterName     = "envoy.filters.http.router"
	faultFilterName      = "envoy.filters.http.fault"
	corsFilterName       = "envoy.filters.http.cors"
	tlsInspectorName     = "envoy.filters.listener.tls_inspector"
	originalDstName      = "envoy.filters.listener.original_dst"
	virtualOutboundName  = "virtualOutbound"
	virtualInboundName   = "virtualInbound"
	httpProxyRouteName   = "http_proxy"
	outboundCapturePort  = 15001
	inboundCapturePort   = 15006
	wildcardIP           = "0.0.0.0"
	defaultInboundTarget = "127.0.0.1"
)

func routerAny() *anypb.Any { return toAny(&routerv3.Router{}) }

func httpFilter(name string, cfg *anypb.Any) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}
}

// meshHTTPFilters are the HTTP filters of sidecar and gateway connection
// managers: fault and CORS (configured per route) and the router.
func meshHTTPFilters() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{
		httpFilter(faultFilterName, toAny(&faultv3.HTTPFault{})),
		httpFilter(corsFilterName, toAny(&corsv3.Cors{})),
		httpFilter(routerFilterName, routerAny()),
	}
}

// hcm builds an HTTP connection manager network filter using RDS route rds,
// or the inline route config when inline is not nil.
func hcm(statPrefix, rds string, inline *routev3.RouteConfiguration, edge bool) *listenerv3.Filter {
	return hcmFilter(hcmConfig(statPrefix, rds, inline, edge))
}

func hcmFilter(m *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(m)}}
}

// hcmConfig is the HTTP connection manager of hcm.
func hcmConfig(statPrefix, rds string, inline *routev3.RouteConfiguration, edge bool) *hcmv3.HttpConnectionManager {
	m := &hcmv3.HttpConnectionManager{
		StatPrefix:       statPrefix,
		CodecType:        hcmv3.HttpConnectionManager_AUTO,
		HttpFilters:      meshHTTPFilters(),
		UseRemoteAddress: boolv(edge),
		NormalizePath:    boolv(true),
		// As Istio: WebSocket upgrades are allowed on every HTTP listener.
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	}
	if inline != nil {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: inline}
	} else {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: adsSource(), RouteConfigName: rds}}
	}
	return m
}

// weightedCluster is one destination of a TCP route.
type weightedCluster struct {
	name   string
	weight uint32
}

// tcpProxy is a tcp_proxy filter to clusters. As istiod, the
// DestinationRule of the first cluster's host sets its idle timeout and
// maximum connection duration (the rule's top-level connectionPool.tcp),
// and a single destination's rule its tunnel (edge.go).
func (g *gen) tcpProxy(statPrefix string, clusters []weightedCluster) *listenerv3.Filter {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: statPrefix}
	if host, ok := outboundHost(clusters[0].name); ok {
		if dr := g.pc.DestinationRule(g.p, host); dr != nil {
			tcp := dr.Spec.GetTrafficPolicy().GetConnectionPool().GetTcp()
			tp.IdleTimeout, tp.MaxDownstreamConnectionDuration = tcp.GetIdleTimeout(), tcp.GetMaxConnectionDuration()
		}
	}
	if len(clusters) == 1 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: clusters[0].name}
		tp.TunnelingConfig = g.tunnelingConfig(clusters[0].name)
	} else {
		wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
		for _, c := range clusters {
			wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: c.name, Weight: c.weight})
		}
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	return &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(tp)}}
}

// outboundHost is the host of an outbound|port|subset|host cluster name.
func outboundHost(cluster string) (string, bool) {
	rest, ok := strings.CutPrefix(cluster, "outbound|")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '|')
	return rest[i+1:], i >= 0
}

func (g *gen) tcpProxyTo(statPrefix, cluster string) *listenerv3.Filter {
	return g.tcpProxy(statPrefix, []weightedCluster{{name: cluster, weight: 1}})
}

func listenerResource(l *listenerv3.Listener) model.XDSResource {
	return model.XDSResource{Name: l.Name, Resource: l}
}

func listenerName(ip string, port uint32) string { return ip + "_" + itoa(port) }

// sidecarListeners are the listeners of a sidecar with iptables capture (REDIRECT).
func (g *gen) sidecarListeners() []model.XDSResource {
	passthrough := g.passthroughName()
	out := []model.XDSResource{
		listenerResource(&listenerv3.Listener{
			Name:             virtualOutboundName,
			Address:          socketAddress(wildcardIP, outboundCapturePort),
			UseOriginalDst:   boolv(true),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains: []*listenerv3.FilterChain{{
				Name:    "virtualOutbound-catchall-tcp",
				Filters: []*listenerv3.Filter{g.tcpProxyTo(passthrough, passthrough)},
			}},
		}),
	}
	out = append(out, g.outboundServiceListeners()...)
	out = append(out, listenerResource(g.virtualInbound()))
	out = append(out, g.boundInboundListeners()...)
	return append(out, g.boundEgressListeners()...)
}

// outboundServiceListeners are Istio's per-service-port listeners, reached
// through virtualOutbound's original-destination hand-off (bind_to_port false).
func (g *gen) outboundServiceListeners() []model.XDSResource {
	seen := map[string]bool{}
	var out []model.XDSResource
	// HTTP ports first, so that a TCP service without a VIP never shadows an HTTP port.
	for _, svc := range g.scope.Services {
		for _, port := range svc.Ports {
			if !port.Protocol.IsHTTP() {
				continue
			}
			name := listenerName(wildcardIP, port.Number)
			if seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, listenerResource(&listenerv3.Listener{
				Name:             name,
				Address:          socketAddress(wildcardIP, port.Number),
				BindToPort:       boolv(false),
				TrafficDirection: corev3.TrafficDirection_OUTBOUND,
				FilterChains: []*listenerv3.FilterChain{{
					Filters: []*listenerv3.Filter{hcm("outbound_"+name, itoa(port.Number), nil, false)},
				}},
			}))
		}
	}
	// TLS ports of services sharing a listener are told apart by SNI.
	tlsByName := map[string][]*registry.Service{}
	for _, svc := range g.scope.Services {
		for _, port := range svc.Ports {
			if isTLSProtocol(port.Protocol) {
				name := listenerName(serviceListenerIP(svc), port.Number)
				tlsByName[name] = append(tlsByName[name], svc)
			}
		}
	}
	for _, svc := range g.scope.Services {
		for _, port := range svc.Ports {
			if port.Protocol.IsHTTP() {
				continue
			}
			ip := serviceListenerIP(svc)
			name := listenerName(ip, port.Number)
			if seen[name] {
				continue
			}
			seen[name] = true
			stat := ClusterName("outbound", port.Number, "", svc.Hostname)
			l := &listenerv3.Listener{
				Name:             name,
				Address:          socketAddress(ip, port.Number),
				BindToPort:       boolv(false),
				TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			}
			if group := tlsByName[name]; len(group) > 0 {
				l.FilterChains = g.sniChains(group, port.Number, stat)
				l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
				// Other SNIs: the service of a VIP, else whatever the
				// destination was (or nothing under REGISTRY_ONLY).
				def, defStat := []weightedCluster{{name: g.passthroughName(), weight: 1}}, g.passthroughName()
				if ip != wildcardIP {
					def, defStat = g.tcpDestinations(svc, port.Number), stat
				}
				l.DefaultFilterChain = &listenerv3.FilterChain{Name: "default", Filters: []*listenerv3.Filter{g.tcpProxy(defStat, def)}}
			} else {
				// Every TCP service of the listener: on a wildcard listener the
				// services with CIDR addresses match their prefixes only.
				catchAll := false
				for _, other := range g.scope.Services {
					op, ok := other.PortByNumber(port.Number)
					if !ok || op.Protocol.IsHTTP() || isTLSProtocol(op.Protocol) || serviceListenerIP(other) != ip {
						continue
					}
					prefixes := servicePrefixes(other, ip)
					if prefixes == nil {
						if catchAll {
							continue // one service only takes a port's traffic without addresses
						}
						catchAll = true
					}
					l.FilterChains = append(l.FilterChains, g.tcpChains(other, port.Number, ClusterName("outbound", port.Number, "", other.Hostname), prefixes)...)
				}
				if !catchAll {
					l.DefaultFilterChain = &listenerv3.FilterChain{Name: "default",
						Filters: []*listenerv3.Filter{g.tcpProxy(g.passthroughName(), []weightedCluster{{name: g.passthroughName(), weight: 1}})}}
				}
			}
			out = append(out, listenerResource(l))
		}
	}
	return out
}

// servicePrefixes are the address ranges a service's chains match on a
// wildcard listener: its addresses (CIDRs, or IPs as /32 and /128); nil when
// it has none or when its listener is its own VIP.
func servicePrefixes(svc *registry.Service, listenerIP string) []*corev3.CidrRange {
	if listenerIP != wildcardIP {
		return nil
	}
	return cidrRanges(svc.Addresses)
}

// cidrRanges converts "10.0.0.0/16" and "10.1.2.3" to CidrRanges, skipping what does not parse.
func cidrRanges(addrs []string) []*corev3.CidrRange {
	var out []*corev3.CidrRange
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				continue
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		p = p.Masked()
		out = append(out, &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: u32(uint32(p.Bits()))})
	}
	return out
}

func isTLSProtocol(p registry.Protocol) bool { return p == registry.TLS || p == registry.HTTPS }

// serviceListenerIP is the address of a service's outbound listeners: its
// VIP, or 0.0.0.0 without one.
func serviceListenerIP(svc *registry.Service) string {
	if len(svc.Addresses) > 0 && net.ParseIP(svc.Addresses[0]) != nil {
		return svc.Addresses[0]
	}
	return wildcardIP
}

// passthroughName is where unknown outbound traffic goes: PassthroughCluster,
// the cluster of the Sidecar's outboundTrafficPolicy.egressProxy, or
// BlackHoleCluster when the Sidecar allows registry services only.
func (g *gen) passthroughName() string {
	if g.scope.RegistryOnly() {
		return BlackHoleCluster
	}
	if c := g.egressProxyCluster(); c != "" {
		return c
	}
	return PassthroughCluster
}

// egressProxyCluster is the cluster of the Sidecar's egressProxy under
// ALLOW_ANY, as istiod names it (GetDestinationCluster without a service:
// outbound|PORT|SUBSET|HOST), or "". The host must be visible to the
// proxy (imported by the Sidecar's egress) for the cluster to exist.
func (g *gen) egressProxyCluster() string {
	sc := g.scope.Sidecar
	if sc == nil || g.scope.RegistryOnly() {
		return ""
	}
	ep := sc.Spec.GetOutboundTrafficPolicy().GetEgressProxy()
	if ep.GetHost() == "" {
		return ""
	}
	return ClusterName("outbound", ep.GetPort().GetNumber(), ep.GetSubset(), ep.GetHost())
}

func (g *gen) routeDestinations(dests []*networking.RouteDestination, ns string, port uint32) []weightedCluster {
	var out []weightedCluster
	for _, d := range dests {
		w := uint32(max(d.GetWeight(), 0))
		if len(dests) == 1 {
			w = 1
		}
		if w == 0 {
			continue
		}
		out = append(out, weightedCluster{name: g.destinationCluster(d.GetDestination(), ns, port), weight: w})
	}
	return out
}

// inboundPort is one port a workload serves.
type inboundPort struct {
	port     uint32
	protocol registry.Protocol
	target   *corev3.Address // where the application listens
	// services are the services the port serves (their namespaces), sorted
	// by host: the inbound cluster's Istio metadata, which names
	// destination_service in the receiving proxy's metrics.
	services []*registry.Service
	// ingress is the Sidecar ingress listener of the port, nil when the
	// port comes from the workload's endpoints alone.
	ingress *networking.IstioIngressListener
	// pool is the Sidecar's connection pool for the port's inbound
	// cluster: the ingress listener's, else inboundConnectionPool.
	pool *networking.ConnectionPoolSettings
}

// tls is the port's Sidecar ingress TLS (terminated by the sidecar), or nil.
func (in inboundPort) tls() *networking.ServerTLSSettings { return in.ingress.GetTls() }

// inboundPorts lists the ports the proxy's workload serves: the ports of
// endpoints at the proxy's IPs and the Sidecar's ingress listeners, sorted.
func (g *gen) inboundPorts() []inboundPort {
	ingress := map[uint32]*networking.IstioIngressListener{}
	var extra []inboundPort
	var defaultPool *networking.ConnectionPoolSettings
	if sc := g.scope.Sidecar; sc != nil && (sc.Spec.GetWorkloadSelector() == nil || model.LabelsMatch(sc.Spec.GetWorkloadSelector().GetLabels(), g.p.Labels)) {
		defaultPool = sc.Spec.GetInboundConnectionPool()
		for _, in := range sc.Spec.GetIngress() {
			n := in.GetPort().GetNumber()
			if n == 0 || ingress[n] != nil {
				continue
			}
			ingress[n] = in
			extra = append(extra, inboundPort{port: n, protocol: registry.Protocol(strings.ToUpper(in.GetPort().GetProtocol()))})
		}
	}
	seen := map[uint32]bool{}
	var out []inboundPort
	for _, ip := range g.p.IPAddresses {
		for _, ep := range g.pc.EndpointsAt(ip) {
			port := ep.Port
			proto := registry.Unknown
			if svc := g.pc.Service(ep.Hostname); svc != nil {
				if sp, ok := svc.PortByNumber(ep.ServicePort); ok {
					proto = sp.Protocol
					if port == 0 {
						port = sp.TargetPort
					}
				}
			}
			if port == 0 {
				port = ep.ServicePort
			}
			if port == 0 {
				continue
			}
			if seen[port] {
				for i := range out {
					if out[i].port == port {
						out[i].services = addService(out[i].services, g.pc.Service(ep.Hostname))
					}
				}
				continue
			}
			seen[port] = true
			out = append(out, inboundPort{port: port, protocol: proto, services: addService(nil, g.pc.Service(ep.Hostname))})
		}
	}
	for _, e := range extra {
		if !seen[e.port] {
			seen[e.port] = true
			out = append(out, e)
		}
	}
	for i := range out {
		in := ingress[out[i].port]
		out[i].ingress = in
		out[i].target = appAddress(in.GetDefaultEndpoint(), out[i].port)
		// As istiod (InboundConnectionPoolForPort): the ingress listener's
		// pool, else the Sidecar's inboundConnectionPool, for every inbound
		// cluster of the workload.
		out[i].pool = cmp.Or(in.GetConnectionPool(), defaultPool, g.inboundRulePool(out[i]))
		if in.GetTls() != nil {
			// The sidecar terminates TLS: the application sees what is inside.
			out[i].protocol = afterTLSTermination(registry.Protocol(strings.ToUpper(in.GetPort().GetProtocol())))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

// addService adds svc to a list sorted by host, once.
func addService(list []*registry.Service, svc *registry.Service) []*registry.Service {
	if svc == nil {
		return list
	}
	i := sort.Search(len(list), func(i int) bool { return list[i].Hostname >= svc.Hostname })
	if i < len(list) && list[i].Hostname == svc.Hostname {
		return list
	}
	return slices.Insert(list, i, svc)
}

// inboundRulePool is the connectionPool of the DestinationRule of the
// port's first service (by host), with its port-level settings for the
// service port that targets the workload port, as istiod's
// buildInboundCluster sets it "so that the server has enough capacity":
// the rule without a workloadSelector, subsets aside, without HTTP/2
// upgrades. nil without one.
func (g *gen) inboundRulePool(in inboundPort) *networking.ConnectionPoolSettings {
	if len(in.services) == 0 {
		return nil
	}
	svc := in.services[0]
	dr := g.pc.InboundDestinationRule(g.p, svc.Hostname)
	if dr == nil {
		return nil
	}
	port := in.port
	for _, sp := range svc.Ports {
		if sp.TargetPort == in.port || (sp.TargetPort == 0 && sp.Number == in.port) {
			port = sp.Number
			break
		}
	}
	cp := effectivePolicy(dr, port, "").cp
	if cp.GetHttp().GetH2UpgradePolicy() == networking.ConnectionPoolSettings_HTTPSettings_DEFAULT && !cp.GetHttp().GetUseClientProtocol() {
		return cp
	}
	// istiod applies no HTTP/2 upgrade to inbound clusters: the
	// application is spoken to in its port's protocol.
	cp = proto.CloneOf(cp)
	cp.Http.H2UpgradePolicy, cp.Http.UseClientProtocol = networking.ConnectionPoolSettings_HTTPSettings_DEFAULT, false
	return cp
}

// appAddress parses a Sidecar ingress defaultEndpoint ("127.0.2.7:9080",
// "0.0.0.0:9080", "unix:///path"); empty means 127.0.0.1:port.
func appAddress(defaultEndpoint string, port uint32) *corev3.Address {
	if path, ok := strings.CutPrefix(defaultEndpoint, "unix://"); ok && path != "" {
		return pipeAddress(path)
	}
	host, p, err := net.SplitHostPort(defaultEndpoint)
	if err != nil {
		return socketAddress(defaultInboundTarget, port)
	}
	n, err := strconv.ParseUint(p, 10, 32)
	if err != nil || n == 0 || n > 65535 || net.ParseIP(host) == nil {
		return socketAddress(defaultInboundTarget, port)
	}
	if host == wildcardIP || host == "::" {
		host = defaultInboundTarget
	}
	return socketAddress(host, uint32(n))
}

// inboundRoute is the inline route config of an inbound HTTP port: everything to the app.
func inboundRoute(port uint32) *routev3.RouteConfiguration {
	cluster := InboundClusterName(port)
	return &routev3.RouteConfiguration{
		Name: cluster,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "inbound|http|" + itoa(port),
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  "default",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
					Timeout:          dur(0),
					MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{
						MaxStreamDuration:    dur(0),
						GrpcTimeoutHeaderMax: dur(0),
					},
				}},
			}},
		}},
		ValidateClusters: boolv(false),
	}
}

func (g *gen) inboundFilter(ip inboundPort) *listenerv3.Filter {
	cluster := InboundClusterName(ip.port)
	if ip.protocol.IsHTTP() {
		m := g.withAuthnFilters(hcmConfig(cluster, "", inboundRoute(ip.port), false))
		g.withAdaptiveConcurrency(m, ip)
		setInboundXFCC(m)
		return hcmFilter(m)
	}
	return g.tcpProxyTo(cluster, cluster)
}

func (g *gen) virtualInbound() *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:    virtualInboundName,
		Address: socketAddress(wildcardIP, inboundCapturePort),
		// No use_original_dst: inbound connections must not be handed to the
		// outbound listener of their port; the original_dst listener filter
		// restores the destination for filter chain matching, as in Istio.
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name:       originalDstName,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&originaldstv3.OriginalDst{})},
		}},
	}
	for _, ip := range g.inboundPorts() {
		if g.inboundBinds(ip) {
			continue // a listener of its own (ingress.go)
		}
		l.FilterChains = append(l.FilterChains, g.inboundChains(ip, ip.port)...)
	}
	if needsTLSInspector(l.FilterChains) {
		l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
	}
	l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
		Name:    "virtualInbound-catchall",
		Filters: []*listenerv3.Filter{g.tcpProxyTo(InboundPassthroughCluster, InboundPassthroughCluster)},
	})
	return l
}

// noneListeners are the listeners of a sidecar without traffic capture
// (INTERCEPTION_MODE NONE): inbound listeners bound to PROXYIP:PORT (or a
// Sidecar ingress listener's bind, see ingress.go), an HTTP forward-proxy
// listener on PROXYIP:15001 and the Sidecar's egress listeners with a
// port, bound to BIND:PORT (see egress.go).
func (g *gen) noneListeners() []model.XDSResource {
	ip := g.p.IP()
	if ip == "" {
		return nil
	}
	out := g.boundInboundListeners()
	name := listenerName(ip, outboundCapturePort)
	out = append(out, listenerResource(&listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(ip, outboundCapturePort),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{hcm("outbound_"+name, httpProxyRouteName, nil, false)},
		}},
	}))
	return append(out, g.boundEgressListeners()...)
}

// tlsInspector is the listener filter that reads SNI for filter chain matching.
func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: tlsInspectorName, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&tlsinspectorv3.TlsInspector{})}}
}
