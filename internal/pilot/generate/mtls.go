package generate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// Names Istio uses for mTLS.
const (
	rawBufferSocketName    = "envoy.transport_sockets.raw_buffer"
	transportSocketMatchMD = "envoy.transport_socket_match"
	tlsModeKey             = "tlsMode"
	tlsModeIstio           = "istio"
	transportTLS           = "tls"
	transportRawBuffer     = "raw_buffer"
)

// istioALPN is what Istio's clients offer on mTLS connections; inbound mTLS
// chains of a PERMISSIVE port match on it (Istio's mtlsHTTPALPNs and
// istio-peer-exchange).
var istioALPN = []string{"istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"}

// inboundMode is the PeerAuthentication mode of one of the proxy's own
// ports. A proxy without a workload certificate cannot terminate mTLS: it
// serves plaintext under PERMISSIVE, and under STRICT it still gets the
// mTLS-only chains, whose handshakes fail for want of a certificate (fail
// closed: plaintext is never served where STRICT is in force).
func (g *gen) inboundMode(port uint32) model.MTLSMode {
	if g.p.Type == model.Router {
		return model.MTLSDisable
	}
	m := g.pc.MTLSModeFor(g.p.Namespace, g.p.Labels, port)
	if !g.p.HasWorkloadCert() && m != model.MTLSStrict {
		return model.MTLSDisable
	}
	return m
}

// inboundChains are the filter chains of one inbound port (matching
// destination port matchPort when it is not 0), as Istio builds them:
// DISABLE serves plaintext; STRICT only mTLS (anything else matches no chain
// and is closed); PERMISSIVE tells them apart by the first bytes: a TLS
// ClientHello offering Istio's ALPN gets mTLS, plaintext goes to the
// filters as it is, and other TLS passes through to the application.
func (g *gen) inboundChains(in inboundPort, matchPort uint32) []*listenerv3.FilterChain {
	name := InboundClusterName(in.port)
	match := func(transport string, alpn []string) *listenerv3.FilterChainMatch {
		m := &listenerv3.FilterChainMatch{TransportProtocol: transport, ApplicationProtocols: alpn}
		if matchPort != 0 {
			m.DestinationPort = u32(matchPort)
		}
		if transport == "" && alpn == nil && matchPort == 0 {
			return nil
		}
		return m
	}
	filters := func() []*listenerv3.Filter { return []*listenerv3.Filter{g.inboundFilter(in)} }
	mode := g.inboundMode(in.port)
	if in.tls() != nil && mode == model.MTLSDisable {
		return []*listenerv3.FilterChain{g.ingressTLSChain(in, matchPort)}
	}
	switch mode {
	case model.MTLSStrict:
		return []*listenerv3.FilterChain{{Name: name, FilterChainMatch: match(transportTLS, nil),
			TransportSocket: g.inboundTLS(in.protocol.IsHTTP()), Filters: filters()}}
	case model.MTLSPermissive:
		return []*listenerv3.FilterChain{
			{Name: name, FilterChainMatch: match(transportTLS, istioALPN), TransportSocket: g.inboundTLS(in.protocol.IsHTTP()), Filters: filters()},
			{Name: name, FilterChainMatch: match(transportRawBuffer, nil), Filters: filters()},
			{Name: name + "-tls-passthrough", FilterChainMatch: match(transportTLS, nil), Filters: []*listenerv3.Filter{g.tcpProxyTo(name, name)}},
		}
	}
	return []*listenerv3.FilterChain{{Name: name, FilterChainMatch: match("", nil), Filters: filters()}}
}

// setInboundXFCC makes a sidecar's inbound connection manager pass the
// mTLS client's identity to the application in x-forwarded-client-cert, as
// Istio configures it.
func setInboundXFCC(m *hcmv3.HttpConnectionManager) {
	m.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
	m.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
		Subject: boolv(true), Uri: true, Dns: true,
	}
}

// needsTLSInspector reports whether chains match on TLS properties.
func needsTLSInspector(chains []*listenerv3.FilterChain) bool {
	for _, c := range chains {
		if m := c.GetFilterChainMatch(); m.GetTransportProtocol() != "" || len(m.GetApplicationProtocols()) > 0 || len(m.GetServerNames()) > 0 {
			return true
		}
	}
	return false
}

// tlsParams13 asks for TLS 1.3: every Mast and Envoy sidecar speaks it.
func tlsParams13() *tlsv3.TlsParameters {
	return &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3}
}

// inboundTLS is the server side of Istio mTLS: the workload certificate
// from SDS "default", clients verified against SDS "ROOTCA" and required
// to be in the mesh's trust domain.
func (g *gen) inboundTLS(http bool) *corev3.TransportSocket {
	alpn := []string{"istio-peer-exchange", "istio"}
	if http {
		alpn = []string{"h2", "http/1.1", "istio-peer-exchange", "istio"}
	}
	ctx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: boolv(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      tlsParams13(),
			AlpnProtocols:                  alpn,
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(sdsDefaultSecret)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: g.withCRL(&tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_URI,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + g.pc.Mesh.TrustDomain + "/"}},
				}}}),
				ValidationContextSdsSecretConfig: sdsSecret(sdsRootSecret),
			}},
		},
	}
	return &corev3.TransportSocket{Name: tlsTransportSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)}}
}

// applyAutoMTLS gives a cluster without DestinationRule TLS Istio's auto
// mTLS: endpoints whose metadata says tlsMode "istio" get ISTIO_MUTUAL,
// the others plaintext. Only clients with a workload certificate get it.
func (g *gen) applyAutoMTLS(c *clusterv3.Cluster, svc *registry.Service, port registry.Port, subset string) {
	if g.grpc || !g.p.HasWorkloadCert() || svc.MeshExternal || c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		return
	}
	mtls := g.upstreamTLS(&networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL}, port.Number, subset, svc.Hostname, g.serviceIdentities(svc, port.Number))
	raw := &corev3.TransportSocket{Name: rawBufferSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&rawbufferv3.RawBuffer{})}}
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: &structpb.Struct{Fields: map[string]*structpb.Value{tlsModeKey: structpb.NewStringValue(tlsModeIstio)}}, TransportSocket: mtls},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: raw},
	}
}

// endpointTLSMetadata marks an endpoint that accepts mTLS for
// transport_socket_matches (Istio's tlsMode), nil otherwise.
func (g *gen) endpointTLSMetadata(svc *registry.Service, ep *registry.Endpoint, port uint32) *corev3.Metadata {
	if !g.pc.EndpointAcceptsMTLS(ep, svc.Namespace, port) {
		return nil
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		transportSocketMatchMD: {Fields: map[string]*structpb.Value{tlsModeKey: structpb.NewStringValue(tlsModeIstio)}},
	}}
}

// withCRL adds the mesh CA's revocation list to an Istio mTLS validation
// context (Envoy's crl, checked on the leaf: the CA signs one CRL per
// signing certificate, and a plug-in CA's intermediates are the user's).
func (g *gen) withCRL(vc *tlsv3.CertificateValidationContext) *tlsv3.CertificateValidationContext {
	return withCRL(vc, g.pc.CRL)
}

func withCRL(vc *tlsv3.CertificateValidationContext, crl *model.RevocationList) *tlsv3.CertificateValidationContext {
	if crl != nil {
		vc.Crl = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: crl.PEM}}
		vc.OnlyVerifyLeafCertCrl = true
	}
	return vc
}
