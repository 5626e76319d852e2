package generate

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestGatewayServerBind: a server with a bind gets a listener of its own on
// that address (an IP, or a unix socket as a pipe address with port 0),
// named BIND_PORT, with the route configuration "http.PORT.BIND" carrying
// only the VirtualServices of its own Gateway, as istiod generates them.
func TestGatewayServerBind(t *testing.T) {
	internal := &networking.Gateway{
		Selector: map[string]string{"istio": "ingressgateway"},
		Servers: []*networking.Server{
			{Port: &networking.Port{Number: 80, Name: "http-internal", Protocol: "HTTP"}, Bind: "127.0.0.7", Hosts: []string{"internal.example.com"}},
			{Port: &networking.Port{Number: 0, Name: "http-uds", Protocol: "HTTP"}, Bind: "unix:///run/gw.sock", Hosts: []string{"internal.example.com"}},
		},
	}
	internalVS := &networking.VirtualService{
		Hosts: []string{"internal.example.com"}, Gateways: []string{"internal"},
		Http: []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{{Destination: dest("details", "", 9080)}}}},
	}
	pc := model.NewPushContext("v1", model.DefaultMeshConfig(), config.NewSnapshot(append(bookinfoConfig(),
		res(config.Gateway, "default", "internal", internal), res(config.VirtualService, "default", "internal", internalVS))), bookinfoRegistry())
	all, err := generateAll(pc, gatewayProxy())
	if err != nil {
		t.Fatal(err)
	}
	listeners := map[string]*listenerv3.Listener{}
	for _, r := range all[ListenerType] {
		listeners[r.Name] = r.Resource.(*listenerv3.Listener)
	}
	rdsOf := func(l *listenerv3.Listener) string {
		hcm := &hcmv3.HttpConnectionManager{}
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
			t.Fatal(err)
		}
		return hcm.GetRds().GetRouteConfigName()
	}
	if l := listeners["0.0.0.0_80"]; l == nil || rdsOf(l) != "http.80" {
		t.Fatalf("the unbound port 80 listener: %v", l)
	}
	l := listeners["127.0.0.7_80"]
	if l == nil {
		t.Fatalf("no listener 127.0.0.7_80 among %v", keys(listeners))
	}
	if a := l.GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.7" || a.GetPortValue() != 80 {
		t.Errorf("bound listener address %v", l.GetAddress())
	}
	if got := rdsOf(l); got != "http.80.127.0.0.7" {
		t.Errorf("bound listener RDS %q, want http.80.127.0.0.7", got)
	}
	u := listeners["unix:///run/gw.sock_0"]
	if u == nil {
		t.Fatalf("no unix socket listener among %v", keys(listeners))
	}
	if p := u.GetAddress().GetPipe().GetPath(); p != "/run/gw.sock" {
		t.Errorf("unix listener address %v, want pipe /run/gw.sock", u.GetAddress())
	}
	routes := map[string]*routev3.RouteConfiguration{}
	for _, r := range all[RouteType] {
		routes[r.Name] = r.Resource.(*routev3.RouteConfiguration)
	}
	hosts := func(name string) []string {
		var out []string
		for _, vh := range routes[name].GetVirtualHosts() {
			out = append(out, vh.GetName())
		}
		return out
	}
	if h := hosts("http.80.127.0.0.7"); len(h) != 1 || h[0] != "internal.example.com:80" {
		t.Errorf("http.80.127.0.0.7 virtual hosts %v, want only internal.example.com:80", h)
	}
	for _, h := range hosts("http.80") {
		if h == "internal.example.com:80" {
			t.Errorf("the unbound http.80 serves the bound server's host")
		}
	}
	if h := hosts("http.0.unix:///run/gw.sock"); len(h) != 1 {
		t.Errorf("unix socket route virtual hosts %v", h)
	}
}

// TestDownstreamTLSInsecureSkipVerify: insecureSkipVerify on a MUTUAL,
// OPTIONAL_MUTUAL or ISTIO_MUTUAL server is Envoy's ACCEPT_UNTRUSTED on the
// client validation context, as istiod generates it; without it, none.
func TestDownstreamTLSInsecureSkipVerify(t *testing.T) {
	for _, s := range []*networking.ServerTLSSettings{
		{Mode: networking.ServerTLSSettings_MUTUAL, CredentialName: "gw"},
		{Mode: networking.ServerTLSSettings_OPTIONAL_MUTUAL, CredentialName: "gw"},
		{Mode: networking.ServerTLSSettings_MUTUAL, ServerCertificate: "/c.pem", PrivateKey: "/k.pem", CaCertificates: "/ca.pem"},
		{Mode: networking.ServerTLSSettings_ISTIO_MUTUAL},
	} {
		for _, skip := range []bool{false, true} {
			s.InsecureSkipVerify = wrapperspb.Bool(skip)
			dt := &tlsv3.DownstreamTlsContext{}
			if err := downstreamTLS(s, true, nil).GetTypedConfig().UnmarshalTo(dt); err != nil {
				t.Fatal(err)
			}
			cc := dt.GetCommonTlsContext()
			vc := cc.GetValidationContext()
			if vc == nil {
				vc = cc.GetCombinedValidationContext().GetDefaultValidationContext()
			}
			got := vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
			if got != skip {
				t.Errorf("%v insecureSkipVerify %v: ACCEPT_UNTRUSTED %v", s.Mode, skip, got)
			}
			if s.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL && cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName() != sdsRootSecret &&
				cc.GetValidationContextSdsSecretConfig().GetName() != sdsRootSecret {
				t.Errorf("ISTIO_MUTUAL insecureSkipVerify %v: lost the mesh root", skip)
			}
		}
	}
}
