package ads

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// parseClusterHost maps "outbound|PORT|SUBSET|HOST" to HOST (the generator
// package has the production version; ads must not depend on it).
func parseClusterHost(name string) (string, bool) {
	i := strings.LastIndexByte(name, '|')
	if i < 0 || strings.Count(name, "|") != 3 || i == len(name)-1 {
		return "", false
	}
	return name[i+1:], true
}

// clusterName is an Istio outbound cluster name for host.
func clusterName(host string) string { return "outbound|80||" + host }

// meshState is what the test generator serves at one push context version.
type meshState struct {
	endpoints map[string]string // service host -> endpoint IP (one cluster per host)
	listeners []string
	routes    map[string]string // route config name -> virtual host domain
	big       int               // when > 0, each cluster carries this many bytes of padding
}

// genCall records one generator invocation.
type genCall struct {
	proxy, typeURL, version string
	names                   []string
}

// testMesh is a small generator: pure in (push context version, type, names).
type testMesh struct {
	mu     sync.Mutex
	states map[string]*meshState
	calls  []genCall
	gate   func(pc *model.PushContext, typeURL string) // called before generating, may block

	noRecord bool // benchmarks: do not record calls
}

func newTestMesh() *testMesh { return &testMesh{states: map[string]*meshState{}} }

// set registers the state for version and returns its push context.
func (m *testMesh) set(version string, st *meshState) *model.PushContext {
	m.mu.Lock()
	m.states[version] = st
	m.mu.Unlock()
	return model.NewPushContext(version, model.DefaultMeshConfig(), nil, nil)
}

func (m *testMesh) takeCalls() []genCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls
	m.calls = nil
	return c
}

func (m *testMesh) generate(pc *model.PushContext, p *model.Proxy, typeURL string, names []string) ([]model.XDSResource, error) {
	if m.gate != nil {
		m.gate(pc, typeURL)
	}
	m.mu.Lock()
	st := m.states[pc.Version]
	if !m.noRecord {
		m.calls = append(m.calls, genCall{p.ID, typeURL, pc.Version, slices.Clone(names)})
	}
	m.mu.Unlock()
	if st == nil {
		return nil, fmt.Errorf("no mesh state for version %q", pc.Version)
	}
	want := func(n string) bool { return len(names) == 0 || slices.Contains(names, n) }
	var out []model.XDSResource
	switch typeURL {
	case ClusterType:
		for _, h := range slices.Sorted(maps.Keys(st.endpoints)) {
			if n := clusterName(h); want(n) {
				c := &clusterv3.Cluster{Name: n, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
				if st.big > 0 {
					c.AltStatName = strings.Repeat("x", st.big)
				}
				out = append(out, model.XDSResource{Name: n, Resource: c})
			}
		}
	case EndpointType:
		for _, h := range slices.Sorted(maps.Keys(st.endpoints)) {
			if n := clusterName(h); want(n) {
				out = append(out, model.XDSResource{Name: n, Resource: cla(n, st.endpoints[h])})
			}
		}
	case ListenerType:
		for _, l := range st.listeners {
			if want(l) {
				out = append(out, model.XDSResource{Name: l, Resource: &listenerv3.Listener{Name: l}})
			}
		}
	case RouteType:
		for _, r := range slices.Sorted(maps.Keys(st.routes)) {
			if want(r) {
				out = append(out, model.XDSResource{Name: r, Resource: &routev3.RouteConfiguration{
					Name:         r,
					VirtualHosts: []*routev3.VirtualHost{{Name: r, Domains: []string{st.routes[r]}}},
				}})
			}
		}
	}
	return out, nil
}

func cla(name, ip string) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
				}}},
			}},
		}}}},
	}
}

// baseState is a mesh with services a, b, c, one listener and one route.
func baseState() *meshState {
	return &meshState{
		endpoints: map[string]string{"a.default.svc.cluster.local": "10.1.0.1", "b.default.svc.cluster.local": "10.1.0.2", "c.default.svc.cluster.local": "10.1.0.3"},
		listeners: []string{"0.0.0.0_80"},
		routes:    map[string]string{"80": "*"},
	}
}

var (
	hostA, hostB, hostC = "a.default.svc.cluster.local", "b.default.svc.cluster.local", "c.default.svc.cluster.local"
	clA, clB, clC       = clusterName(hostA), clusterName(hostB), clusterName(hostC)
)

// env is a real gRPC server on loopback with the ADS server registered.
type env struct {
	t    *testing.T
	mesh *testMesh
	ads  *Server
	grpc *grpc.Server
	addr string
	reg  *prometheus.Registry
}

// newEnv serves mesh as mastd does, with the ADS codec.
func newEnv(t testing.TB, mesh *testMesh, mutate ...func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, mesh, []grpc.ServerOption{grpc.ForceServerCodecV2(Codec())}, mutate...)
}

// newEnvWith serves mesh on a gRPC server with opts (none: gRPC's own codec).
func newEnvWith(t testing.TB, mesh *testMesh, opts []grpc.ServerOption, mutate ...func(*Config)) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Generate:    mesh.generate,
		ClusterHost: parseClusterHost,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:     reg,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	s := New(cfg)
	s.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	e := &env{mesh: mesh, ads: s, grpc: g, addr: lis.Addr().String(), reg: reg}
	if tt, ok := t.(*testing.T); ok {
		e.t = tt
	}
	return e
}

// dial opens a client connection; opts add to insecure credentials.
func (e *env) dial(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(e.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// status returns the status of the one connection of proxy id.
func (e *env) status(t testing.TB, id string) ProxyStatus {
	t.Helper()
	p, ok := e.lookup(id)
	if !ok {
		t.Fatalf("proxy %s not in Status()", id)
	}
	return p
}

func (e *env) lookup(id string) (ProxyStatus, bool) {
	for _, p := range e.ads.Status() {
		if p.ID == id {
			return p, true
		}
	}
	return ProxyStatus{}, false
}

func (p ProxyStatus) typ(typeURL string) TypeStatus {
	for _, t := range p.Types {
		if t.TypeURL == typeURL {
			return t
		}
	}
	return TypeStatus{}
}

// eventually polls cond until it holds. It is for state only observable through
// Status (another goroutine's progress); the deadline only guards against hangs.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func nodeID(name string) string {
	return "sidecar~10.0.0.1~" + name + ".default~default.svc.cluster.local"
}

func node(name string) *corev3.Node { return &corev3.Node{Id: nodeID(name)} }

// streamCtx bounds a client stream so that a broken server fails the test
// instead of hanging it. Not a timing assertion: healthy runs take milliseconds.
func streamCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type sotwClient struct {
	t      testing.TB
	id     string
	stream grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	first  bool
	seq    int
}

func (e *env) sotw(t testing.TB, cc *grpc.ClientConn, name string) *sotwClient {
	t.Helper()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(streamCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return &sotwClient{t: t, id: nodeID(name), stream: s, first: true}
}

func (c *sotwClient) send(r *discoveryv3.DiscoveryRequest) {
	c.t.Helper()
	if c.first {
		r.Node = &corev3.Node{Id: c.id}
		c.first = false
	}
	if err := c.stream.Send(r); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *sotwClient) request(typeURL string, names ...string) {
	c.t.Helper()
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
}

func (c *sotwClient) recv() *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	r, err := c.stream.Recv()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return r
}

// expect receives the next response and checks its type, version and names.
// Pushes of earlier barrier types are skipped: they are test artefacts.
func (c *sotwClient) expect(typeURL, version string, names ...string) *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	r := c.recv()
	for strings.HasPrefix(r.TypeUrl, barrierType) {
		r = c.recv()
	}
	got := resourceNames(c.t, r.Resources)
	if r.TypeUrl != typeURL || r.VersionInfo != version || !slices.Equal(got, names) {
		c.t.Fatalf("got %s %s %v; want %s %s %v", shortType(r.TypeUrl), r.VersionInfo, got, shortType(typeURL), version, names)
	}
	return r
}

func (c *sotwClient) ack(r *discoveryv3.DiscoveryResponse, names ...string) {
	c.t.Helper()
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names})
}

// barrierType is a type URL no generator serves; each barrier uses a new one.
const barrierType = "type.googleapis.com/mast.test.Barrier"

// barrier sends a request of a new, otherwise unused type and waits for its
// answer. The server handles a stream's requests in order, so every response
// caused by earlier requests or pushes arrives first; any that is not a
// (pushed) earlier barrier fails the test.
func (c *sotwClient) barrier() {
	c.t.Helper()
	c.seq++
	typ := fmt.Sprintf("%s%d", barrierType, c.seq)
	c.request(typ, "barrier")
	for {
		r := c.recv()
		if r.TypeUrl == typ {
			return
		}
		if !strings.HasPrefix(r.TypeUrl, barrierType) {
			c.t.Fatalf("before the barrier got an unexpected %s %s %v", shortType(r.TypeUrl), r.VersionInfo, resourceNames(c.t, r.Resources))
		}
	}
}

func resourceNames(t testing.TB, rs []*anypb.Any) []string {
	t.Helper()
	var out []string
	for _, a := range rs {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("resource of type %s: %v", a.TypeUrl, err)
		}
		out = append(out, nameOf(m))
	}
	return out
}

func nameOf(m proto.Message) string {
	switch m := m.(type) {
	case *clusterv3.Cluster:
		return m.Name
	case *endpointv3.ClusterLoadAssignment:
		return m.ClusterName
	case *listenerv3.Listener:
		return m.Name
	case *routev3.RouteConfiguration:
		return m.Name
	}
	return "?"
}

type deltaClient struct {
	t      testing.TB
	id     string
	stream grpc.BidiStreamingClient[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]
	first  bool
	seq    int
}

func (e *env) delta(t testing.TB, cc *grpc.ClientConn, name string) *deltaClient {
	t.Helper()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(streamCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return &deltaClient{t: t, id: nodeID(name), stream: s, first: true}
}

func (c *deltaClient) send(r *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if c.first {
		r.Node = &corev3.Node{Id: c.id}
		c.first = false
	}
	if err := c.stream.Send(r); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *deltaClient) recv() *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	r, err := c.stream.Recv()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return r
}

// expect receives the next response, checks type, sent names and removed
// names, ACKs it, and returns it.
func (c *deltaClient) expect(typeURL string, names, removed []string) *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	r := c.recv()
	var got []string
	for _, res := range r.Resources {
		got = append(got, res.Name)
		if res.Version == "" || res.Resource.GetTypeUrl() != typeURL {
			c.t.Fatalf("resource %s: version %q type %q", res.Name, res.Version, res.Resource.GetTypeUrl())
		}
	}
	if r.TypeUrl != typeURL || !slices.Equal(got, names) || !slices.Equal(r.RemovedResources, removed) {
		c.t.Fatalf("got %s %v removed %v; want %s %v removed %v", shortType(r.TypeUrl), got, r.RemovedResources, shortType(typeURL), names, removed)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce})
	return r
}

// barrier subscribes to a secret that does not exist and waits for the
// answer (its removal), failing if anything else arrives first.
func (c *deltaClient) barrier() {
	c.t.Helper()
	c.seq++
	name := fmt.Sprintf("barrier-%d", c.seq)
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: SecretType, ResourceNamesSubscribe: []string{name}})
	r := c.recv()
	if r.TypeUrl != SecretType {
		var got []string
		for _, res := range r.Resources {
			got = append(got, res.Name)
		}
		c.t.Fatalf("before the barrier got an unexpected %s %v removed %v", shortType(r.TypeUrl), got, r.RemovedResources)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: SecretType, ResponseNonce: r.Nonce})
}

// counter returns the value of a counter with label type=typ ("" for none).
func counter(t testing.TB, e *env, name, typ string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := typ == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "type" && l.GetValue() == typ {
					match = true
				}
			}
			if match {
				switch {
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue()
				case m.GetHistogram() != nil:
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return 0
}

func gauge(t testing.TB, e *env, name string) float64 { t.Helper(); return counter(t, e, name, "") }

func assertCode(t testing.TB, err error, code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code().String() != code || !strings.Contains(st.Message(), msg) {
		t.Fatalf("err = %v; want %s containing %q", err, code, msg)
	}
}

func nodeProxy(t testing.TB) *model.Proxy {
	t.Helper()
	p, err := model.ParseNode(node("gen"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
