package ads

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

func edsPush(hosts ...string) *model.PushRequest {
	r := &model.PushRequest{EDSHosts: map[string]struct{}{}, Reason: "endpoints"}
	for _, h := range hosts {
		r.EDSHosts[h] = struct{}{}
	}
	return r
}

// xdsCalls returns the generator calls for the four xDS types, as sorted
// "proxy type names" strings.
func xdsCalls(m *testMesh) []string {
	var out []string
	for _, c := range m.takeCalls() {
		if orderRank(c.typeURL) < len(pushOrder) {
			out = append(out, fmt.Sprintf("%s %s %v", strings.SplitN(c.proxy, "~", 4)[2], shortType(c.typeURL), c.names))
		}
	}
	slices.Sort(out)
	return out
}

// An endpoint-only push sends EDS alone, only for subscribed clusters of the
// changed hosts, and the generator is asked for exactly those clusters.
func TestEndpointOnlyPush(t *testing.T) {
	for _, kind := range []string{"sotw", "delta"} {
		t.Run(kind, func(t *testing.T) {
			m := newTestMesh()
			e := newEnv(t, m)
			st := baseState()
			e.ads.Push(m.set("v1", st), nil)
			cc := e.dial(t)
			p1 := newPushClient(t, e, cc, kind, "p1", clA, clB)
			p2 := newPushClient(t, e, cc, kind, "p2", clB, clC)
			m.takeCalls()

			steps := []struct {
				host   string
				p1, p2 []string // EDS resources each proxy must receive next
			}{
				{hostA, []string{clA}, nil},
				{hostC, nil, []string{clC}},
				{hostB, []string{clB}, []string{clB}},
			}
			for i, s := range steps {
				st.endpoints[s.host] = fmt.Sprintf("10.3.0.%d", i)
				next := *st
				next.endpoints = cloneMap(st.endpoints)
				v := fmt.Sprintf("e%d", i)
				e.ads.Push(m.set(v, &next), edsPush(s.host))
				// The next response on each stream is the expected EDS one:
				// a wrong response from an earlier step would arrive first.
				if s.p1 != nil {
					p1.expectEDS(v, s.p1)
				}
				if s.p2 != nil {
					p2.expectEDS(v, s.p2)
				}
			}
			p1.barrier()
			p2.barrier()
			want := []string{
				"p1.default eds [" + clA + "]", "p1.default eds [" + clB + "]",
				"p2.default eds [" + clB + "]", "p2.default eds [" + clC + "]",
			}
			if got := xdsCalls(m); !slices.Equal(got, want) {
				t.Fatalf("generator calls\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// pushClient wraps either stream kind, subscribed to CDS and EDS for clusters.
type pushClient struct {
	sotw  *sotwClient
	delta *deltaClient
	names []string
}

func newPushClient(t *testing.T, e *env, cc *grpc.ClientConn, kind, name string, clusters ...string) *pushClient {
	t.Helper()
	p := &pushClient{names: clusters}
	if kind == "sotw" {
		p.sotw = e.sotw(t, cc, name)
		p.sotw.request(ClusterType)
		p.sotw.ack(p.sotw.expect(ClusterType, "v1", clA, clB, clC))
		p.sotw.request(EndpointType, clusters...)
		p.sotw.ack(p.sotw.expect(EndpointType, "v1", clusters...), clusters...)
		p.sotw.barrier()
		return p
	}
	p.delta = e.delta(t, cc, name)
	p.delta.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType})
	p.delta.expect(ClusterType, []string{clA, clB, clC}, nil)
	p.delta.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: clusters})
	p.delta.expect(EndpointType, clusters, nil)
	p.delta.barrier()
	return p
}

func (p *pushClient) expectEDS(version string, names []string) {
	if p.sotw != nil {
		p.sotw.t.Helper()
		p.sotw.ack(p.sotw.expect(EndpointType, version, names...), p.names...)
		return
	}
	p.delta.t.Helper()
	if r := p.delta.expect(EndpointType, names, nil); r.SystemVersionInfo != version {
		p.delta.t.Fatalf("system_version_info %q, want %q", r.SystemVersionInfo, version)
	}
}

func (p *pushClient) barrier() {
	if p.sotw != nil {
		p.sotw.barrier()
		return
	}
	p.delta.barrier()
}

// A client that never reads holds only its own stream: the others get every
// push while its push waits behind a Send that cannot complete.
// A stuck client holds neither the other streams nor a push throttle slot
// (with a throttle of 1, the healthy proxies still get every push).
func TestStuckClientDoesNotDelayOthers(t *testing.T) {
	for _, throttle := range []int{0, 1, -1} {
		t.Run(fmt.Sprintf("throttle=%d", throttle), func(t *testing.T) {
			m := newTestMesh()
			e := newEnv(t, m, func(c *Config) { c.PushThrottle = throttle })
			big := func() *meshState { s := baseState(); s.big = 512 << 10; return s }
			e.ads.Push(m.set("v1", big()), nil)

			cc := e.dial(t)
			healthy := []*sotwClient{e.sotw(t, cc, "ok1"), e.sotw(t, cc, "ok2")}
			for _, c := range healthy {
				c.request(ClusterType)
				c.ack(c.expect(ClusterType, "v1", clA, clB, clC))
			}
			// Small fixed flow-control windows: the server can buffer little for it.
			stuckCC := e.dial(t, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
			stuck := e.sotw(t, stuckCC, "stuck")
			stuck.request(ClusterType) // and never Recv
			eventually(t, "stuck proxy was handed v1", func() bool {
				p, ok := e.lookup(stuck.id)
				return ok && p.typ(ClusterType).VersionSent == "v1"
			})

			e.ads.Push(m.set("v2", big()), nil)
			for _, c := range healthy {
				c.ack(c.expect(ClusterType, "v2", clA, clB, clC))
			}
			eventually(t, "stuck proxy blocked in Send", func() bool { return e.status(t, stuck.id).Sending == ClusterType })

			e.ads.Push(m.set("v3", big()), nil)
			for _, c := range healthy {
				c.ack(c.expect(ClusterType, "v3", clA, clB, clC))
			}
			st := e.status(t, stuck.id)
			if !st.PushPending || st.Sending != ClusterType || st.typ(ClusterType).VersionSent != "v1" {
				t.Fatalf("stuck proxy status %+v: want v1 sent, v2 in flight, v3 pending", st)
			}
		})
	}
}

// TestPushThrottleBoundsConcurrentGeneration: with PushThrottle 2, at most two
// of five connections generate at once, and all of them get the push.
func TestPushThrottleBoundsConcurrentGeneration(t *testing.T) {
	m := newTestMesh()
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	gateOpen := make(chan struct{})
	m.gate = func(pc *model.PushContext, typeURL string) {
		if pc.Version != "v2" || typeURL != ClusterType {
			return
		}
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		<-gateOpen
		mu.Lock()
		inFlight--
		mu.Unlock()
	}
	e := newEnv(t, m, func(c *Config) { c.PushThrottle = 2 })
	e.ads.Push(m.set("v1", baseState()), nil)
	cc := e.dial(t)
	var clients []*sotwClient
	for i := range 5 {
		c := e.sotw(t, cc, fmt.Sprintf("p%d", i))
		c.request(ClusterType)
		c.ack(c.expect(ClusterType, "v1", clA, clB, clC))
		clients = append(clients, c)
	}
	e.ads.Push(m.set("v2", baseState()), nil)
	for released := range len(clients) {
		want := min(2, len(clients)-released)
		eventually(t, fmt.Sprintf("%d generators at the gate", want), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return inFlight == want
		})
		gateOpen <- struct{}{}
	}
	for _, c := range clients {
		c.ack(c.expect(ClusterType, "v2", clA, clB, clC))
	}
	if maxInFlight != 2 {
		t.Fatalf("at most %d connections generated at once; want the throttle's 2", maxInFlight)
	}
}

// Pushes arriving while a connection is busy merge into one.
func TestRapidPushesCoalesce(t *testing.T) {
	m := newTestMesh()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	m.gate = func(pc *model.PushContext, typeURL string) {
		if pc.Version == "v1" && typeURL == ClusterType {
			once.Do(func() { close(entered); <-release })
		}
	}
	e := newEnv(t, m)
	e.ads.Push(m.set("v0", baseState()), nil)
	c := e.sotw(t, e.dial(t), "app")
	c.request(ClusterType)
	c.ack(c.expect(ClusterType, "v0", clA, clB, clC))
	c.barrier()

	e.ads.Push(m.set("v1", baseState()), nil)
	<-entered // the connection is generating v1
	for i := 2; i <= 200; i++ {
		e.ads.Push(m.set(fmt.Sprintf("v%d", i), baseState()), nil)
	}
	if !e.status(t, c.id).PushPending {
		t.Fatal("no push pending while the connection is busy")
	}
	close(release)
	c.ack(c.expect(ClusterType, "v1", clA, clB, clC))
	c.ack(c.expect(ClusterType, "v200", clA, clB, clC)) // v2..v199 merged away
	c.barrier()
	var cds []string
	for _, call := range m.takeCalls() {
		if call.typeURL == ClusterType {
			cds = append(cds, call.version)
		}
	}
	if !slices.Equal(cds, []string{"v0", "v1", "v200"}) {
		t.Fatalf("CDS generated for %v, want v0 v1 v200", cds)
	}
}

// Close ends every stream, GracefulStop completes, and no goroutine is left.
func TestCloseEndsStreamsWithoutLeaks(t *testing.T) {
	baseline := runtime.NumGoroutine()
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	cc := e.dial(t)
	s := e.sotw(t, cc, "s")
	subscribeAll(s, "v1", clA)
	d := e.delta(t, cc, "d")
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType})
	d.expect(ClusterType, []string{clA, clB, clC}, nil)
	silent := e.sotw(t, cc, "silent") // reads nothing
	silent.request(ClusterType)
	eventually(t, "three proxies connected", func() bool { return len(e.ads.Status()) == 3 })

	e.ads.Close()
	_, err := s.stream.Recv()
	assertCode(t, err, "Unavailable", "shutting down")
	_, err = d.stream.Recv()
	assertCode(t, err, "Unavailable", "shutting down")
	e.grpc.GracefulStop()
	if n := len(e.ads.Status()); n != 0 {
		t.Fatalf("%d proxies still registered after Close", n)
	}
	if got := gauge(t, e, "pilot_xds"); got != 0 {
		t.Fatalf("pilot_xds = %v after Close, want 0", got)
	}
	cc.Close()
	eventually(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseline })
}

// With a SendTimeout, a client that stops reading is disconnected instead of
// holding its stream forever.
func TestSendTimeoutDisconnectsStuckClient(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m, func(c *Config) { c.SendTimeout = 50 * time.Millisecond })
	big := func() *meshState { s := baseState(); s.big = 512 << 10; return s }
	e.ads.Push(m.set("v1", big()), nil)
	stuckCC := e.dial(t, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	stuck := e.sotw(t, stuckCC, "stuck")
	stuck.request(ClusterType) // and never Recv
	eventually(t, "stuck proxy connected", func() bool { _, ok := e.lookup(stuck.id); return ok })
	for i := 2; ; i++ {
		if _, ok := e.lookup(stuck.id); !ok {
			break
		}
		e.ads.Push(m.set(fmt.Sprintf("v%d", i), big()), nil)
		eventually(t, "push handled or proxy gone", func() bool {
			p, ok := e.lookup(stuck.id)
			return !ok || p.Sending != "" || !p.PushPending
		})
	}
	if got := gauge(t, e, "pilot_xds"); got != 0 {
		t.Fatalf("pilot_xds = %v after the stuck proxy was dropped", got)
	}
}

// A full push narrowed to some hosts' routes (PushRequest.Hosts) asks the
// generator only for the names Config.RouteScope keeps: Delta sends those
// that changed, SotW skips a type of which it keeps nothing and otherwise
// answers with every name, as the protocol requires.
func TestHostScopedPush(t *testing.T) {
	routes := []string{"80", "81", "82"}
	for _, kind := range []string{"sotw", "delta"} {
		t.Run(kind, func(t *testing.T) {
			m := newTestMesh()
			keepNames := map[string]bool{"81": true}
			e := newEnv(t, m, func(c *Config) {
				c.RouteScope = func(_ *model.PushContext, p *model.Proxy, hosts map[string]struct{}) RouteScoper {
					return func(typeURL string) (bool, func(string) bool) {
						if typeURL != RouteType {
							return true, nil
						}
						if _, ok := hosts["none.example"]; ok {
							return false, nil
						}
						return false, func(n string) bool { return keepNames[n] }
					}
				}
			})
			st := baseState()
			st.routes = map[string]string{"80": "a", "81": "b", "82": "c"}
			e.ads.Push(m.set("v1", st), nil)
			cc := e.dial(t)
			var sc *sotwClient
			var dc *deltaClient
			if kind == "sotw" {
				sc = e.sotw(t, cc, "p1")
				sc.request(RouteType, routes...)
				sc.ack(sc.expect(RouteType, "v1", routes...), routes...)
				sc.barrier()
			} else {
				dc = e.delta(t, cc, "p1")
				dc.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: RouteType, ResourceNamesSubscribe: routes})
				dc.expect(RouteType, routes, nil)
				dc.barrier()
			}
			m.takeCalls()
			scoped := func(host string) *model.PushRequest {
				return &model.PushRequest{Full: true, Types: map[string]struct{}{RouteType: {}}, Hosts: map[string]struct{}{host: {}}}
			}
			next := func(v, host string) {
				n := *st
				n.routes = map[string]string{"80": "a-" + v, "81": "b-" + v, "82": "c-" + v}
				e.ads.Push(m.set(v, &n), scoped(host))
			}
			// Every route changes; the scope keeps 81.
			next("v2", "svc.example")
			if kind == "sotw" {
				sc.ack(sc.expect(RouteType, "v2", routes...), routes...)
				sc.barrier()
			} else {
				dc.expect(RouteType, []string{"81"}, nil)
				dc.barrier()
			}
			if got, want := xdsCalls(m), []string{"p1.default rds [81]"}; kind == "delta" && !slices.Equal(got, want) {
				t.Fatalf("generator calls %q, want %q", got, want)
			}
			m.takeCalls()
			// The scope keeps nothing: no generation, no response.
			next("v3", "none.example")
			if kind == "sotw" {
				sc.barrier()
			} else {
				dc.barrier()
			}
			if got := xdsCalls(m); len(got) != 0 {
				t.Fatalf("generator calls %q for a push whose scope keeps nothing", got)
			}
		})
	}
}
