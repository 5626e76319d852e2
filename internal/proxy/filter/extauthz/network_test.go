package extauthz

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/rbac"
)

// tcpAuthz allows connections from one principal and records the checks.
type tcpAuthz struct {
	authv3.UnimplementedAuthorizationServer
	allow string
	delay time.Duration
	mu    sync.Mutex
	seen  []*authv3.CheckRequest
}

func (s *tcpAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.mu.Lock()
	s.seen = append(s.seen, req)
	s.mu.Unlock()
	time.Sleep(s.delay)
	if req.GetAttributes().GetSource().GetPrincipal() == s.allow {
		md, _ := structpb.NewStruct(map[string]any{"checked-by": "tcp-authz"})
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_OK)}, DynamicMetadata: md}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_PERMISSION_DENIED)}}, nil
}

func (s *tcpAuthz) checks() []*authv3.CheckRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*authv3.CheckRequest(nil), s.seen...)
}

func startTCPAuthz(t *testing.T, s *tcpAuthz) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, s)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// networkConfig is what istiod builds for an envoyExtAuthzGrpc provider on
// a TCP filter chain.
func networkConfig() *netextauthzv3.ExtAuthz {
	m := istioMatcher()
	m.Filter = "envoy.filters.network.rbac"
	return &netextauthzv3.ExtAuthz{
		StatPrefix:          "tcp.",
		TransportApiVersion: corev3.ApiVersion_V3,
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: "outbound|9000||ext-authz.foo.svc.cluster.local", Authority: "outbound_.9000_._.ext-authz.foo.svc.cluster.local"}},
			Timeout: durationpb.New(2 * time.Second),
		},
		FilterEnabledMetadata: m,
	}
}

func mustNetwork(t *testing.T, c *netextauthzv3.ExtAuthz) filter.NetworkFilter {
	t.Helper()
	a, _ := anypb.New(c)
	f, err := NewNetwork(NetworkName, a)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// shadowRBAC is the network RBAC istiod puts before ext_authz: the CUSTOM
// rule matches connections to port 5432.
func shadowRBAC(t *testing.T) filter.NetworkFilter {
	t.Helper()
	a, _ := anypb.New(&rbacnetv3.RBAC{StatPrefix: "tcp.", ShadowRulesStatPrefix: "istio_ext_authz_",
		ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
			"istio-ext-authz-ns[foo]-policy[db]-rule[0]": {
				Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 5432}}},
				Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
			}}}})
	f, err := rbac.NewNetwork(rbac.NetworkName, a)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tcpConn(svc *filter.Services, principal string, port uint16) *filter.Conn {
	c := &filter.Conn{Remote: netip.MustParseAddrPort("127.0.0.7:40000"), Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.8"), port),
		TLS: true, SNI: "outbound_.5432_._.db.foo.svc.cluster.local", Services: svc}
	c.SetPrincipal(principal)
	return c
}

// TestNetworkCheck: the shadow RBAC marks the connections the CUSTOM rule
// matches, ext_authz asks the authorizer about those only (with the
// connection's peers and the source principal of its certificate), and
// closes the ones it denies.
func TestNetworkCheck(t *testing.T) {
	srv := &tcpAuthz{allow: "spiffe://cluster.local/ns/foo/sa/sleep"}
	svc := services(startTCPAuthz(t, srv))
	cfg := networkConfig()
	cfg.IncludeTlsSession = true
	chain := []filter.NetworkFilter{shadowRBAC(t), mustNetwork(t, cfg)}
	c := tcpConn(svc, "spiffe://cluster.local/ns/foo/sa/sleep", 5432)
	if !runNetwork(chain, c) {
		t.Fatal("the allowed principal's connection was closed")
	}
	if v, _ := filter.LookupMeta(c.Meta, NetworkName, "checked-by"); v != "tcp-authz" {
		t.Errorf("the OK answer's dynamic metadata: %v", c.Meta)
	}
	seen := srv.checks()
	if len(seen) != 1 {
		t.Fatalf("%d checks", len(seen))
	}
	a := seen[0].GetAttributes()
	if a.GetSource().GetPrincipal() != "spiffe://cluster.local/ns/foo/sa/sleep" ||
		a.GetSource().GetAddress().GetSocketAddress().GetAddress() != "127.0.0.7" ||
		a.GetSource().GetAddress().GetSocketAddress().GetPortValue() != 40000 ||
		a.GetDestination().GetAddress().GetSocketAddress().GetPortValue() != 5432 ||
		a.GetTlsSession().GetSni() != "outbound_.5432_._.db.foo.svc.cluster.local" || a.GetRequest() != nil {
		t.Errorf("check attributes: %v", a)
	}

	if runNetwork(chain, tcpConn(svc, "spiffe://cluster.local/ns/foo/sa/other", 5432)) {
		t.Error("a denied principal's connection went through")
	}
	if runNetwork(chain, tcpConn(svc, "", 5432)) {
		t.Error("a connection without a certificate went through")
	}
	// Port 6000 is not selected by the CUSTOM rule: never checked.
	before := len(srv.checks())
	if !runNetwork(chain, tcpConn(svc, "spiffe://cluster.local/ns/foo/sa/other", 6000)) {
		t.Error("an unselected connection was closed")
	}
	if n := len(srv.checks()) - before; n != 0 {
		t.Errorf("an unselected connection was checked %d times", n)
	}
}

// TestNetworkFailureModes: an authorizer that cannot be reached or does not
// answer in time closes the connection, unless failure_mode_allow.
func TestNetworkFailureModes(t *testing.T) {
	slow := &tcpAuthz{allow: "spiffe://cluster.local/ns/foo/sa/sleep", delay: 300 * time.Millisecond}
	for _, tc := range []struct {
		name     string
		addr     string
		failOpen bool
		want     bool
	}{
		{"down, closed", closedAddr(t), false, false},
		{"down, open", closedAddr(t), true, true},
		{"too slow, closed", startTCPAuthz(t, slow), false, false},
		{"too slow, open", startTCPAuthz(t, slow), true, true},
	} {
		cfg := networkConfig()
		cfg.FailureModeAllow = tc.failOpen
		cfg.GrpcService.Timeout = durationpb.New(50 * time.Millisecond)
		chain := []filter.NetworkFilter{shadowRBAC(t), mustNetwork(t, cfg)}
		c := tcpConn(services(tc.addr), "spiffe://cluster.local/ns/foo/sa/sleep", 5432)
		if got := runNetwork(chain, c); got != tc.want {
			t.Errorf("%s: let through %v, want %v", tc.name, got, tc.want)
		}
	}
}

// runNetwork runs a chain's network filters and reports whether the
// connection goes through.
func runNetwork(chain []filter.NetworkFilter, c *filter.Conn) bool {
	_, ok := filter.RunNetwork(chain, c)
	return ok
}

// closedAddr is a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func TestParseNetworkRefusesWhatItCannotHonour(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*netextauthzv3.ExtAuthz)
		want string
	}{
		{func(c *netextauthzv3.ExtAuthz) { c.IncludePeerCertificate = true }, "include_peer_certificate: not supported"},
		{func(c *netextauthzv3.ExtAuthz) { c.SendTlsAlertOnDenial = true }, "send_tls_alert_on_denial: not supported"},
		{func(c *netextauthzv3.ExtAuthz) { c.BootstrapMetadataLabelsKey = "x" }, "bootstrap_metadata_labels_key: not supported"},
		{func(c *netextauthzv3.ExtAuthz) { c.MetadataContextNamespaces = []string{"x"} }, "metadata_context_namespaces: not supported"},
		{func(c *netextauthzv3.ExtAuthz) { c.ShadowMode = true }, "shadow_mode: not supported"},
		{func(c *netextauthzv3.ExtAuthz) { c.TransportApiVersion = corev3.ApiVersion_V2 }, "transport_api_version"},
		{func(c *netextauthzv3.ExtAuthz) { c.GrpcService = nil }, "grpc_service: required"},
		{func(c *netextauthzv3.ExtAuthz) {
			c.GetGrpcService().TargetSpecifier = &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "x"}}
		}, "grpc_service.google_grpc: not supported"},
		{func(c *netextauthzv3.ExtAuthz) {
			c.FilterEnabledMetadata.Value = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_BoolMatch{BoolMatch: true}}
		}, "filter_enabled_metadata.value"},
	} {
		c := networkConfig()
		tc.mod(c)
		_, err := parseNetworkProto(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error %q, got %v", tc.want, err)
		}
	}
	if _, err := parseNetworkProto(networkConfig()); err != nil {
		t.Errorf("istiod's network ext_authz: %v", err)
	}
}

// FuzzParseNetworkConfig: any network ExtAuthz either parses into a config
// with a gRPC service and a positive timeout, or is refused.
func FuzzParseNetworkConfig(f *testing.F) {
	for _, c := range []*netextauthzv3.ExtAuthz{networkConfig(), {}, {GrpcService: &corev3.GrpcService{}}} {
		b, _ := proto.Marshal(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c netextauthzv3.ExtAuthz
		if proto.Unmarshal(data, &c) != nil {
			return
		}
		cfg, err := parseNetworkProto(&c)
		if err != nil {
			return
		}
		if cfg.GRPC == nil || cfg.GRPC.Cluster == "" || cfg.Timeout <= 0 {
			t.Fatalf("accepted an unusable config: %+v", cfg)
		}
		NewNetworkFromConfig(cfg)
	})
}
