package generate

import (
	"slices"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// gwServer is one server of a Gateway that selects the proxy.
type gwServer struct {
	gw  *model.Gateway
	srv *networking.Server
}

func (s gwServer) protocol() string { return strings.ToUpper(s.srv.GetPort().GetProtocol()) }

func (s gwServer) tlsMode() networking.ServerTLSSettings_TLSmode { return s.srv.GetTls().GetMode() }

// isPlainHTTP: HTTP, HTTP2 or GRPC without TLS termination.
func (s gwServer) isPlainHTTP() bool {
	switch s.protocol() {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB":
		return true
	}
	return false
}

func (s gwServer) isPassthrough() bool {
	m := s.tlsMode()
	return (s.protocol() == "HTTPS" || s.protocol() == "TLS") &&
		(m == networking.ServerTLSSettings_PASSTHROUGH || m == networking.ServerTLSSettings_AUTO_PASSTHROUGH)
}

// isHTTPS: TLS terminated here, HTTP inside.
func (s gwServer) isHTTPS() bool { return s.protocol() == "HTTPS" && !s.isPassthrough() }

// httpsRouteName is Istio's route name for a terminating HTTPS server
// (".BIND" appended when the server has a bind).
func (s gwServer) httpsRouteName() string {
	return "https." + itoa(s.srv.GetPort().GetNumber()) + "." + s.srv.GetPort().GetName() + "." + s.gw.Name + "." + s.gw.Namespace + bindSuffix(s.srv.GetBind())
}

// gwPort is one listener of a gateway: a port and the server's bind (an
// IP address, or "unix://PATH" with port 0), "" for the proxy's address.
type gwPort struct {
	bind   string
	number uint32
}

// bindSuffix is what Istio appends to a gateway route name for a bind.
func bindSuffix(bind string) string {
	if bind == "" {
		return ""
	}
	return "." + bind
}

// httpRouteName is Istio's route name for the plain HTTP servers of a port.
func (p gwPort) httpRouteName() string { return "http." + itoa(p.number) + bindSuffix(p.bind) }

// serverHost is a Gateway server host "ns/host" split; ns "*" when absent.
type serverHost struct{ ns, host string }

func (s gwServer) hosts() []serverHost {
	var out []serverHost
	for _, h := range s.srv.GetHosts() {
		ns, host, ok := strings.Cut(h, "/")
		if !ok {
			ns, host = "*", h
		}
		if ns == "." {
			ns = s.gw.Namespace
		}
		out = append(out, serverHost{ns: ns, host: host})
	}
	return out
}

// gatewayPorts groups the proxy's gateway servers by port and bind, as
// istiod's merged gateway does (a server with a bind gets a listener of
// its own on that address or unix socket), ports ascending.
func (g *gen) gatewayPorts() ([]gwPort, map[gwPort][]gwServer) {
	byPort := map[gwPort][]gwServer{}
	var ports []gwPort
	for _, gw := range g.pc.GatewaysFor(g.p) {
		for _, srv := range gw.Spec.GetServers() {
			k := gwPort{bind: srv.GetBind(), number: srv.GetPort().GetNumber()}
			if k.number == 0 && !strings.HasPrefix(k.bind, unixBindPrefix) {
				continue
			}
			if _, ok := byPort[k]; !ok {
				ports = append(ports, k)
			}
			byPort[k] = append(byPort[k], gwServer{gw: gw, srv: srv})
		}
	}
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].number != ports[j].number {
			return ports[i].number < ports[j].number
		}
		return ports[i].bind < ports[j].bind
	})
	return ports, byPort
}

// unixBindPrefix marks a server bind that is a unix domain socket path
// ("unix:///path", or "unix://@name" in Linux's abstract namespace).
const unixBindPrefix = "unix://"

func (g *gen) gatewayBindIP() string {
	if g.p.InterceptionNone() && g.p.IP() != "" {
		return g.p.IP()
	}
	return wildcardIP
}

// gatewayListenerAddr is the name and address of a gateway port's
// listener: the server's bind (an IP, or a unix socket as a pipe address)
// or else the proxy's own bind address; named BIND_PORT as in istiod.
func (g *gen) gatewayListenerAddr(p gwPort) (string, *corev3.Address) {
	switch {
	case strings.HasPrefix(p.bind, unixBindPrefix):
		return listenerName(p.bind, p.number), pipeAddress(strings.TrimPrefix(p.bind, unixBindPrefix))
	case p.bind != "":
		return listenerName(p.bind, p.number), socketAddress(p.bind, p.number)
	}
	ip := g.gatewayBindIP()
	return listenerName(ip, p.number), socketAddress(ip, p.number)
}

// gatewayListeners builds one listener per Gateway port: an HCM with RDS
// "http.PORT" for HTTP servers; SNI-matched filter chains for HTTPS (TLS
// terminated with file or SDS certificates) and TLS passthrough servers;
// tcp_proxy for TCP servers.
func (g *gen) gatewayListeners() []model.XDSResource {
	ports, byPort := g.gatewayPorts()
	var out []model.XDSResource
	for _, gp := range ports {
		servers := byPort[gp]
		port := gp.number
		name, addr := g.gatewayListenerAddr(gp)
		l := &listenerv3.Listener{Name: name, Address: addr, TrafficDirection: corev3.TrafficDirection_OUTBOUND}
		seen := map[string]bool{} // filter chain match keys
		addChain := func(fc *listenerv3.FilterChain) {
			key := chainMatchKey(fc.GetFilterChainMatch())
			if seen[key] {
				return
			}
			seen[key] = true
			l.FilterChains = append(l.FilterChains, fc)
		}
		tlsChains := false
		if servers[0].isPlainHTTP() {
			addChain(&listenerv3.FilterChain{Filters: []*listenerv3.Filter{hcmFilter(g.withAuthnFilters(hcmConfig("outbound_"+name, gp.httpRouteName(), nil, true)))}})
		} else {
			for _, s := range servers {
				switch {
				case s.isHTTPS():
					tlsChains = true
					addChain(&listenerv3.FilterChain{
						Name:             s.httpsRouteName(),
						FilterChainMatch: sniMatch(s.hosts()),
						TransportSocket:  downstreamTLS(s.srv.GetTls(), true, g.pc.CRL),
						Filters:          []*listenerv3.Filter{hcmFilter(g.withAuthnFilters(hcmConfig("outbound_"+name, s.httpsRouteName(), nil, true)))},
					})
				case s.isPassthrough():
					tlsChains = true
					for _, fc := range g.passthroughChains(s, port, "outbound_"+name) {
						addChain(fc)
					}
				case s.protocol() == "TLS":
					tlsChains = true
					for _, fc := range g.gatewayTCPChains(s, port, "outbound_"+name) {
						if sni := sniMatch(s.hosts()); sni != nil {
							if fc.FilterChainMatch == nil {
								fc.FilterChainMatch = &listenerv3.FilterChainMatch{}
							}
							fc.FilterChainMatch.ServerNames = sni.ServerNames
						}
						fc.TransportSocket = downstreamTLS(s.srv.GetTls(), false, g.pc.CRL)
						addChain(fc)
					}
				case s.protocol() == "TCP" || s.protocol() == "MONGO" || s.protocol() == "REDIS" || s.protocol() == "MYSQL":
					for _, fc := range g.gatewayTCPChains(s, port, "outbound_"+name) {
						addChain(fc)
					}
				}
			}
		}
		if len(l.FilterChains) == 0 {
			continue
		}
		if tlsChains {
			l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
		}
		out = append(out, listenerResource(l))
	}
	return out
}

// sniMatch matches the server's hosts by SNI; "*" matches any SNI.
func sniMatch(hosts []serverHost) *listenerv3.FilterChainMatch {
	var names []string
	for _, h := range hosts {
		if h.host == "*" {
			return nil
		}
		names = append(names, h.host)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil
	}
	return &listenerv3.FilterChainMatch{ServerNames: names}
}

// downstreamTLS is the TLS context of a terminating Gateway server: SDS
// secret kubernetes://credentialName (and credentialName-cacert or
// caCertCredentialName for MUTUAL and OPTIONAL_MUTUAL), one per
// credentialNames, one file pair per tlsCertificates, or the files;
// ISTIO_MUTUAL clients are checked against the mesh CA's crl too.
func downstreamTLS(t *networking.ServerTLSSettings, http bool, crl *model.RevocationList) *corev3.TransportSocket {
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}}
	cc := ctx.CommonTlsContext
	if http {
		cc.AlpnProtocols = []string{"h2", "http/1.1"}
	}
	mutual := t.GetMode() == networking.ServerTLSSettings_MUTUAL || t.GetMode() == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	switch {
	case t.GetMode() == networking.ServerTLSSettings_ISTIO_MUTUAL:
		cc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(sdsDefaultSecret)}
		cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsSecret(sdsRootSecret)}
		if crl != nil || t.GetInsecureSkipVerify().GetValue() {
			vc := &tlsv3.CertificateValidationContext{}
			if crl != nil {
				vc = withCRL(vc, crl)
			}
			if t.GetInsecureSkipVerify().GetValue() {
				vc.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
			}
			cc.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         vc,
				ValidationContextSdsSecretConfig: sdsSecret(sdsRootSecret),
			}}
		}
		ctx.RequireClientCertificate = boolv(true)
	case t.GetCredentialName() != "" || len(t.GetCredentialNames()) > 0:
		// credentialNames: one SDS secret each (e.g. an RSA and an ECDSA
		// certificate); MUTUAL verifies clients with the first one's CA, as
		// Istio does.
		names := t.GetCredentialNames()
		if t.GetCredentialName() != "" {
			names = []string{t.GetCredentialName()}
		}
		for _, n := range names {
			cc.TlsCertificateSdsSecretConfigs = append(cc.TlsCertificateSdsSecretConfigs, sdsSecret(credentialSecret(n)))
		}
		if mutual {
			ca := names[0] + "-cacert"
			if t.GetCaCertCredentialName() != "" {
				ca = t.GetCaCertCredentialName()
			}
			cc.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         clientValidation(t),
				ValidationContextSdsSecretConfig: sdsSecret(credentialSecret(ca)),
			}}
		}
	case len(t.GetTlsCertificates()) > 0:
		// tlsCertificates: several certificates from files; MUTUAL
		// verifies clients with the first one's caCertificates, as Istio does.
		for _, c := range t.GetTlsCertificates() {
			cc.TlsCertificates = append(cc.TlsCertificates, &tlsv3.TlsCertificate{CertificateChain: fileSource(c.GetServerCertificate()), PrivateKey: fileSource(c.GetPrivateKey())})
		}
		if ca := t.GetTlsCertificates()[0].GetCaCertificates(); mutual && ca != "" {
			vc := clientValidation(t)
			vc.TrustedCa = fileSource(ca)
			cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	default:
		if t.GetServerCertificate() != "" && t.GetPrivateKey() != "" {
			cc.TlsCertificates = []*tlsv3.TlsCertificate{{CertificateChain: fileSource(t.GetServerCertificate()), PrivateKey: fileSource(t.GetPrivateKey())}}
		}
		if mutual && t.GetCaCertificates() != "" {
			vc := clientValidation(t)
			vc.TrustedCa = fileSource(t.GetCaCertificates())
			if t.GetCaCrl() != "" {
				vc.Crl = fileSource(t.GetCaCrl())
			}
			cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	}
	if t.GetMode() == networking.ServerTLSSettings_MUTUAL {
		ctx.RequireClientCertificate = boolv(true)
	}
	minV, maxV, suites := tlsVersion(t.GetMinProtocolVersion()), tlsVersion(t.GetMaxProtocolVersion()), cipherSuites(t.GetCipherSuites())
	if minV != tlsv3.TlsParameters_TLS_AUTO || maxV != tlsv3.TlsParameters_TLS_AUTO || len(suites) > 0 {
		cc.TlsParams = &tlsv3.TlsParameters{TlsMinimumProtocolVersion: minV, TlsMaximumProtocolVersion: maxV, CipherSuites: suites}
	}
	return &corev3.TransportSocket{Name: tlsTransportSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)}}
}

// credentialSecret is the SDS name of a credential, Istio's
// "kubernetes://NAME": the proxy's credential store serves it.
func credentialSecret(name string) string { return "kubernetes://" + name }

// clientValidation is how a MUTUAL server checks client certificates
// besides its CA: subjectAltNames and the SPKI and certificate pins;
// insecureSkipVerify checks them but lets a client whose certificate
// fails in (Envoy's ACCEPT_UNTRUSTED, as istiod generates it).
func clientValidation(t *networking.ServerTLSSettings) *tlsv3.CertificateValidationContext {
	vc := &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(t.GetSubjectAltNames()),
		VerifyCertificateSpki: t.GetVerifyCertificateSpki(), VerifyCertificateHash: t.GetVerifyCertificateHash()}
	if t.GetInsecureSkipVerify().GetValue() {
		vc.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
	}
	return vc
}

// cipherSuites drops invalid and repeated names, as Istio does (validation
// warns about each).
func cipherSuites(names []string) []string {
	var out []string
	for _, n := range names {
		if config.ValidCipherSuite(n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func tlsVersion(v networking.ServerTLSSettings_TLSProtocol) tlsv3.TlsParameters_TlsProtocol {
	switch v {
	case networking.ServerTLSSettings_TLSV1_0:
		return tlsv3.TlsParameters_TLSv1_0
	case networking.ServerTLSSettings_TLSV1_1:
		return tlsv3.TlsParameters_TLSv1_1
	case networking.ServerTLSSettings_TLSV1_2:
		return tlsv3.TlsParameters_TLSv1_2
	case networking.ServerTLSSettings_TLSV1_3:
		return tlsv3.TlsParameters_TLSv1_3
	}
	return tlsv3.TlsParameters_TLS_AUTO
}

// vsHostAllowed reports whether a VirtualService host in namespace ns may
// bind to the server hosts; it returns the host the virtual host is named by
// (the narrower of the two).
func vsHostAllowed(hosts []serverHost, ns, vsHost string) (string, bool) {
	for _, h := range hosts {
		if h.ns != "*" && h.ns != ns {
			continue
		}
		if model.HostMatches(h.host, vsHost) {
			return vsHost, true
		}
		if model.HostMatches(vsHost, h.host) {
			return h.host, true
		}
	}
	return "", false
}

// passthroughChains are the SNI filter chains of a PASSTHROUGH server (from
// VirtualService tls routes) or an AUTO_PASSTHROUGH server (one per cluster,
// SNI outbound_.PORT_.SUBSET_.HOST, to the SNI-DNAT cluster of that name).
func (g *gen) passthroughChains(s gwServer, port uint32, stat string) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	if s.tlsMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
		for _, svc := range g.scope.Services {
			if !anyHostMatches(s.hosts(), svc.Namespace, svc.Hostname) {
				continue
			}
			dr := g.pc.DestinationRule(g.p, svc.Hostname)
			for _, p := range svc.Ports {
				subsets := []string{""}
				if dr != nil {
					for _, ss := range dr.Spec.GetSubsets() {
						subsets = append(subsets, ss.GetName())
					}
				}
				for _, subset := range subsets {
					out = append(out, &listenerv3.FilterChain{
						FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{istioSNI(p.Number, subset, svc.Hostname)}},
						Filters:          []*listenerv3.Filter{g.tcpProxyTo(stat, sniDNATName(p.Number, subset, svc.Hostname))},
					})
				}
			}
		}
		return out
	}
	hosts := s.hosts()
	taken := map[string]bool{} // destination subnets|SNI, claimed by the first match naming them
	for _, vs := range g.pc.GatewayVirtualServices(s.gw.Key, g.p.Namespace) {
		for _, r := range vs.Spec.GetTls() {
			for _, m := range r.GetMatch() {
				if m.GetPort() != 0 && m.GetPort() != port {
					continue
				}
				if !g.sourceApplies(m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways(), vs.Namespace, s.gw.Key) {
					continue
				}
				cs := g.routeDestinations(r.GetRoute(), vs.Namespace, port)
				if len(cs) == 0 {
					continue
				}
				dst := cidrRanges(m.GetDestinationSubnets())
				var snis []string
				for _, sni := range m.GetSniHosts() {
					h, ok := vsHostAllowed(hosts, vs.Namespace, sni)
					if k := subnetSNIKey(dst, h); ok && !taken[k] {
						taken[k] = true
						snis = append(snis, h)
					}
				}
				if len(snis) == 0 {
					continue
				}
				sort.Strings(snis)
				out = append(out, &listenerv3.FilterChain{
					// istiod drops destinationSubnets here and lets the route
					// take the SNI for every destination; Mast matches them.
					FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: snis, PrefixRanges: dst},
					Filters:          []*listenerv3.Filter{g.tcpProxy(stat, cs)},
				})
			}
		}
	}
	return out
}

func anyHostMatches(hosts []serverHost, ns, host string) bool {
	for _, h := range hosts {
		if (h.ns == "*" || h.ns == ns) && model.HostMatches(h.host, host) {
			return true
		}
	}
	return false
}

// gatewayTCPChains are the filter chains of a TCP server, or a TLS server
// that terminates TLS, from the tcp routes of the VirtualServices bound to
// its gateway and hosts (tcpRoutes, l4Chains): istiod ignores
// destinationSubnets and sourceSubnet on gateways and lets such a route take
// all of the port's traffic; Mast matches them (see docs/decisions.md).
func (g *gen) gatewayTCPChains(s gwServer, port uint32, stat string) []*listenerv3.FilterChain {
	hosts := s.hosts()
	var vss []*model.VirtualService
	for _, vs := range g.pc.GatewayVirtualServices(s.gw.Key, g.p.Namespace) {
		for _, h := range vs.Hosts {
			if _, ok := vsHostAllowed(hosts, vs.Namespace, h); ok {
				vss = append(vss, vs)
				break
			}
		}
	}
	rules, main := g.tcpRoutes(vss, port, s.gw.Key, nil)
	return l4Chains(rules, main, nil, func(cs []weightedCluster) *listenerv3.Filter { return g.tcpProxy(stat, cs) })
}

// gatewayRouteSets maps each route config name of the gateway to its port and servers.
func (g *gen) gatewayRouteSets() ([]string, map[string]gatewayRouteSet) {
	ports, byPort := g.gatewayPorts()
	sets := map[string]gatewayRouteSet{}
	var names []string
	for _, gp := range ports {
		servers := byPort[gp]
		port := gp.number
		if servers[0].isPlainHTTP() {
			var http []gwServer
			for _, s := range servers {
				if s.isPlainHTTP() {
					http = append(http, s)
				}
			}
			name := gp.httpRouteName()
			names = append(names, name)
			sets[name] = gatewayRouteSet{port: port, servers: http}
			continue
		}
		for _, s := range servers {
			if s.isHTTPS() {
				name := s.httpsRouteName()
				if _, dup := sets[name]; !dup {
					names = append(names, name)
				}
				sets[name] = gatewayRouteSet{port: port, servers: append(sets[name].servers, s)}
			}
		}
	}
	return names, sets
}

type gatewayRouteSet struct {
	port    uint32
	servers []gwServer
}

func (g *gen) gatewayRoutes(names []string) []model.XDSResource {
	all, sets := g.gatewayRouteSets()
	if len(names) == 0 {
		names = all
	}
	var out []model.XDSResource
	for _, n := range names {
		if set, ok := sets[n]; ok {
			out = append(out, routeResource(g.gatewayRouteConfig(n, set)))
		}
	}
	return out
}

// gatewayRouteConfig builds the virtual hosts of a gateway port: one per host
// that a bound VirtualService shares with a server, with that VirtualService's
// routes (several VirtualServices for one host are merged in order); servers
// with httpsRedirect require TLS.
func (g *gen) gatewayRouteConfig(name string, set gatewayRouteSet) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name, ValidateClusters: boolv(false)}
	byHost := map[string]*routev3.VirtualHost{}
	var order []string
	vhost := func(host string) *routev3.VirtualHost {
		if vh, ok := byHost[host]; ok {
			return vh
		}
		vh := &routev3.VirtualHost{Name: host + ":" + itoa(set.port)}
		byHost[host] = vh
		order = append(order, host)
		return vh
	}
	for _, s := range set.servers {
		hosts := s.hosts()
		redirect := s.srv.GetTls().GetHttpsRedirect()
		for _, vs := range g.pc.GatewayVirtualServices(s.gw.Key, g.p.Namespace) {
			var routes []*routev3.Route
			built := false
			for _, h := range vs.Hosts {
				vh, ok := vsHostAllowed(hosts, vs.Namespace, h)
				if !ok {
					continue
				}
				if !built {
					routes = g.httpRoutes([]*model.VirtualService{vs}, routeOpts{gateway: s.gw.Key, port: set.port, tls: s.srv.GetTls() != nil})
					built = true
				}
				v := vhost(vh)
				v.Routes = append(v.Routes, routes...)
				if redirect {
					v.RequireTls = routev3.VirtualHost_ALL
				}
			}
		}
		if redirect {
			for _, h := range hosts {
				vhost(h.host).RequireTls = routev3.VirtualHost_ALL
			}
		}
	}
	ds := domainSet{}
	for _, host := range order {
		vh := byHost[host]
		if len(vh.Routes) == 0 && vh.RequireTls == routev3.VirtualHost_NONE {
			continue
		}
		if len(vh.Routes) == 0 {
			vh.Routes = []*routev3.Route{{
				Name:   "blackhole",
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}},
			}}
		}
		if host == "*" {
			vh.Domains = ds.add(nil, "*")
		} else {
			vh.Domains = ds.add(nil, host, host+":"+itoa(set.port))
		}
		if len(vh.Domains) == 0 {
			continue
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	return rc
}
