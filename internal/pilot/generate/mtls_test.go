package generate

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networking "istio.io/api/networking/v1alpha3"
	securitybeta "istio.io/api/security/v1beta1"
	typebeta "istio.io/api/type/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// withCert marks a proxy as holding a workload certificate.
func withCert(p *model.Proxy) *model.Proxy {
	p.Metadata[model.MetaWorkloadCert] = "true"
	return p
}

func peerAuth(ns, name string, selector map[string]string, mode securitybeta.PeerAuthentication_MutualTLS_Mode, ports map[uint32]securitybeta.PeerAuthentication_MutualTLS_Mode) config.Resource {
	pa := &securitybeta.PeerAuthentication{Mtls: &securitybeta.PeerAuthentication_MutualTLS{Mode: mode}}
	if selector != nil {
		pa.Selector = &typebeta.WorkloadSelector{MatchLabels: selector}
	}
	if ports != nil {
		pa.PortLevelMtls = map[uint32]*securitybeta.PeerAuthentication_MutualTLS{}
		for p, m := range ports {
			pa.PortLevelMtls[p] = &securitybeta.PeerAuthentication_MutualTLS{Mode: m}
		}
	}
	return res(config.PeerAuthentication, ns, name, pa)
}

const (
	unset      = securitybeta.PeerAuthentication_MutualTLS_UNSET
	strict     = securitybeta.PeerAuthentication_MutualTLS_STRICT
	permissive = securitybeta.PeerAuthentication_MutualTLS_PERMISSIVE
	disable    = securitybeta.PeerAuthentication_MutualTLS_DISABLE
)

// pushOnly is the fixture registry with only the given configuration.
func pushOnly(rs ...config.Resource) *model.PushContext {
	return model.NewPushContext("v1", model.DefaultMeshConfig(), config.NewSnapshot(rs), bookinfoRegistry())
}

func pushWith(extra ...config.Resource) *model.PushContext {
	return model.NewPushContext("v1", model.DefaultMeshConfig(), config.NewSnapshot(append(bookinfoConfig(), extra...)), bookinfoRegistry())
}

// inboundListener returns the none-mode inbound listener of reviews on 9080.
func inboundListener(t *testing.T, pc *model.PushContext, p *model.Proxy) *listenerv3.Listener {
	t.Helper()
	rs, err := Generate(pc, p, ListenerType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Name == "10.1.0.2_9080" {
			return r.Resource.(*listenerv3.Listener)
		}
	}
	t.Fatal("no inbound listener 10.1.0.2_9080")
	return nil
}

// chainShape summarises a chain as transport protocol + whether it terminates TLS.
func chainShape(l *listenerv3.Listener) []string {
	var out []string
	for _, c := range l.GetFilterChains() {
		s := c.GetFilterChainMatch().GetTransportProtocol()
		if s == "" {
			s = "any"
		}
		if len(c.GetFilterChainMatch().GetApplicationProtocols()) > 0 {
			s += "+istio-alpn"
		}
		if c.GetTransportSocket() != nil {
			s += "/mtls"
		}
		out = append(out, s)
	}
	return out
}

// TestPeerAuthenticationLevels: mesh, namespace, workload and port level
// policies resolve as in Istio and shape the inbound chains.
func TestPeerAuthenticationLevels(t *testing.T) {
	reviews := map[string]string{"app": "reviews"}
	permissiveChains := []string{"tls+istio-alpn/mtls", "raw_buffer", "tls"}
	strictChains := []string{"tls/mtls"}
	plain := []string{"any"}
	cases := []struct {
		name  string
		pas   []config.Resource
		cert  bool
		want  []string
		wantM model.MTLSMode
	}{
		{"default is PERMISSIVE", nil, true, permissiveChains, model.MTLSPermissive},
		{"proxy without certificate fails closed under STRICT", []config.Resource{peerAuth("istio-system", "default", nil, strict, nil)}, false, strictChains, model.MTLSStrict},
		{"proxy without certificate serves plaintext under PERMISSIVE", nil, false, plain, model.MTLSPermissive},
		{"mesh STRICT", []config.Resource{peerAuth("istio-system", "default", nil, strict, nil)}, true, strictChains, model.MTLSStrict},
		{"namespace overrides mesh", []config.Resource{peerAuth("istio-system", "default", nil, strict, nil), peerAuth("default", "ns", nil, disable, nil)}, true, plain, model.MTLSDisable},
		{"workload overrides namespace", []config.Resource{peerAuth("default", "ns", nil, disable, nil), peerAuth("default", "reviews", reviews, strict, nil)}, true, strictChains, model.MTLSStrict},
		{"UNSET workload inherits namespace", []config.Resource{peerAuth("default", "ns", nil, strict, nil), peerAuth("default", "reviews", reviews, unset, nil)}, true, strictChains, model.MTLSStrict},
		{"port level overrides workload", []config.Resource{peerAuth("default", "reviews", reviews, strict, map[uint32]securitybeta.PeerAuthentication_MutualTLS_Mode{9080: disable})}, true, plain, model.MTLSDisable},
		{"port level for another port", []config.Resource{peerAuth("default", "reviews", reviews, strict, map[uint32]securitybeta.PeerAuthentication_MutualTLS_Mode{8080: disable})}, true, strictChains, model.MTLSStrict},
		{"selector not matching", []config.Resource{peerAuth("default", "ratings", map[string]string{"app": "ratings"}, strict, nil)}, true, permissiveChains, model.MTLSPermissive},
		{"other namespace ignored", []config.Resource{peerAuth("other", "ns", nil, strict, nil)}, true, permissiveChains, model.MTLSPermissive},
		{"mesh PERMISSIVE explicit", []config.Resource{peerAuth("istio-system", "default", nil, permissive, nil)}, true, permissiveChains, model.MTLSPermissive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := pushWith(tc.pas...)
			p := reviewsNoneProxy()
			if tc.cert {
				p = withCert(p)
			}
			if m := pc.MTLSModeFor("default", map[string]string{"app": "reviews", "version": "v1"}, 9080); m != tc.wantM {
				t.Errorf("MTLSModeFor = %v, want %v", m, tc.wantM)
			}
			l := inboundListener(t, pc, p)
			if got := chainShape(l); !slices.Equal(got, tc.want) {
				t.Fatalf("chains %v, want %v", got, tc.want)
			}
			hasInspector := len(l.GetListenerFilters()) > 0
			if hasInspector != (len(tc.want) > 1 || tc.want[0] != "any") {
				t.Errorf("tls_inspector present %v for chains %v", hasInspector, tc.want)
			}
			for _, c := range l.GetFilterChains() {
				if c.GetTransportSocket() == nil {
					continue
				}
				var d tlsv3.DownstreamTlsContext
				if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&d); err != nil {
					t.Fatal(err)
				}
				cc := d.GetCommonTlsContext()
				if !d.GetRequireClientCertificate().GetValue() || cc.GetTlsCertificateSdsSecretConfigs()[0].GetName() != "default" ||
					cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName() != "ROOTCA" ||
					cc.GetTlsParams().GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 {
					t.Fatalf("inbound TLS context is not Istio mTLS: %v", &d)
				}
			}
		})
	}
}

// clusterAndEndpoints generates the default reviews cluster and its endpoints for p.
func clusterAndEndpoints(t *testing.T, pc *model.PushContext, p *model.Proxy, name string) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment) {
	t.Helper()
	cs, err := Generate(pc, p, ClusterType, []string{name})
	if err != nil || len(cs) != 1 {
		t.Fatalf("cluster %s: %v %d", name, err, len(cs))
	}
	es, err := Generate(pc, p, EndpointType, []string{name})
	if err != nil || len(es) != 1 {
		t.Fatalf("endpoints %s: %v %d", name, err, len(es))
	}
	return cs[0].Resource.(*clusterv3.Cluster), es[0].Resource.(*endpointv3.ClusterLoadAssignment)
}

func istioEndpoints(la *endpointv3.ClusterLoadAssignment) (n, total int) {
	for _, g := range la.GetEndpoints() {
		for _, e := range g.GetLbEndpoints() {
			total++
			if e.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"].GetFields()["tlsMode"].GetStringValue() == "istio" {
				n++
			}
		}
	}
	return n, total
}

// TestAutoMTLS: a client with a certificate gets transport socket matches
// choosing ISTIO_MUTUAL for endpoints that accept mTLS; DISABLE on the
// server, an explicit DestinationRule TLS mode, or a client without a
// certificate turn it off.
func TestAutoMTLS(t *testing.T) {
	const reviews = "outbound|9080||reviews.default.svc.cluster.local"
	drTLS := func(mode networking.ClientTLSSettings_TLSmode) config.Resource {
		return res(config.DestinationRule, "default", "reviews-tls", &networking.DestinationRule{Host: "reviews",
			TrafficPolicy: &networking.TrafficPolicy{Tls: &networking.ClientTLSSettings{Mode: mode}}})
	}
	cases := []struct {
		name        string
		extra       []config.Resource
		cert        bool
		wantMatches bool
		wantSocket  string // the cluster's own transport socket: "", "tls"
		wantIstioEP int
	}{
		{"auto mTLS to sidecars", nil, true, true, "", 3},
		{"client without certificate", nil, false, false, "", 3},
		{"server DISABLE", []config.Resource{peerAuth("default", "reviews", map[string]string{"app": "reviews"}, disable, nil)}, true, true, "", 0},
		{"server DISABLE on one version", []config.Resource{peerAuth("default", "reviews", map[string]string{"version": "v2"}, disable, nil)}, true, true, "", 2},
		{"DestinationRule DISABLE", []config.Resource{drTLS(networking.ClientTLSSettings_DISABLE)}, true, false, "", 3},
		{"DestinationRule ISTIO_MUTUAL", []config.Resource{drTLS(networking.ClientTLSSettings_ISTIO_MUTUAL)}, true, false, "tls", 3},
		{"DestinationRule SIMPLE", []config.Resource{drTLS(networking.ClientTLSSettings_SIMPLE)}, true, false, "tls", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := pushOnly(tc.extra...)
			p := productpageProxy()
			if tc.cert {
				p = withCert(p)
			}
			c, la := clusterAndEndpoints(t, pc, p, reviews)
			if got := len(c.GetTransportSocketMatches()) > 0; got != tc.wantMatches {
				t.Fatalf("transport_socket_matches present %v, want %v", got, tc.wantMatches)
			}
			if tc.wantMatches {
				m := c.GetTransportSocketMatches()
				var u tlsv3.UpstreamTlsContext
				if err := m[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(&u); err != nil {
					t.Fatal(err)
				}
				if m[0].GetMatch().GetFields()["tlsMode"].GetStringValue() != "istio" || u.GetSni() != "outbound_.9080_._.reviews.default.svc.cluster.local" ||
					u.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName() != "default" || len(m[1].GetMatch().GetFields()) != 0 {
					t.Fatalf("unexpected matches %v", m)
				}
				sans := u.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
				if len(sans) != 1 || sans[0].GetMatcher().GetExact() != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" {
					t.Fatalf("server identities %v, want reviews' service account", sans)
				}
			}
			got := ""
			if c.GetTransportSocket() != nil {
				got = "tls"
			}
			if got != tc.wantSocket {
				t.Fatalf("transport_socket %q, want %q", got, tc.wantSocket)
			}
			if n, total := istioEndpoints(la); n != tc.wantIstioEP || total != 3 {
				t.Fatalf("%d of %d endpoints marked tlsMode istio, want %d of 3", n, total, tc.wantIstioEP)
			}
		})
	}
}
