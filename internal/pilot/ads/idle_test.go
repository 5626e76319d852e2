package ads

import (
	"strings"
	"sync/atomic"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Config.Idle is called once a fan-out is complete: after the last
// connection with a push has finished it, not while another one still
// generates, and once per fan-out.
func TestIdleAfterLastConnectionPushed(t *testing.T) {
	for _, kind := range []string{"sotw", "delta"} {
		t.Run(kind, func(t *testing.T) {
			m := newTestMesh()
			var idle atomic.Int32
			var hold atomic.Pointer[chan struct{}] // p2's EDS generation waits on it while set
			e := newEnv(t, m, func(c *Config) {
				c.Idle = func() { idle.Add(1) }
				c.Generate = func(pc *model.PushContext, p *model.Proxy, typeURL string, names []string) ([]model.XDSResource, error) {
					if ch := hold.Load(); ch != nil && typeURL == EndpointType && strings.Contains(p.ID, "~p2.") {
						<-*ch
					}
					return m.generate(pc, p, typeURL, names)
				}
			})
			st := baseState()
			e.ads.Push(m.set("v1", st), nil)
			cc := e.dial(t)
			p1 := newPushClient(t, e, cc, kind, "p1", clA)
			p2 := newPushClient(t, e, cc, kind, "p2", clA)
			eventually(t, "no push pending after the initial requests", func() bool { return e.ads.fan.quiet() })
			base := idle.Load()

			release := make(chan struct{})
			hold.Store(&release)
			next := *st
			next.endpoints = cloneMap(st.endpoints)
			next.endpoints[hostA] = "10.9.0.1"
			e.ads.Push(m.set("e1", &next), edsPush(hostA))
			p1.expectEDS("e1", []string{clA})
			// p1 is done; p2 still generates.
			if got := idle.Load() - base; got != 0 {
				t.Fatalf("Idle called %d times while p2 still generated", got)
			}
			hold.Store(nil)
			close(release)
			p2.expectEDS("e1", []string{clA})
			eventually(t, "Idle after p2's push", func() bool { return idle.Load()-base == 1 })
			p1.barrier()
			p2.barrier()
			if got := idle.Load() - base; got != 1 {
				t.Fatalf("Idle called %d times for one fan-out, want 1", got)
			}
		})
	}
}

// quiet reports whether no send is in progress and no answer owed.
func (f *fanout) quiet() bool {
	st := f.state.Load()
	return sendingOf(st) == 0 && owingOf(st) == 0
}

// sentOwing reports whether every send has returned and owing clients
// still owe answers.
func (f *fanout) sentOwing(owing uint64) bool {
	st := f.state.Load()
	return sendingOf(st) == 0 && owingOf(st) == owing
}

// idleEnv is an env whose Config.Idle counts its calls and whose fanout
// records its timers (fakeAfter) rather than starting them, with two
// clients of kind subscribed to cluster A's endpoints.
func idleEnv(t *testing.T, kind string) (e *env, m *testMesh, idle *atomic.Int32, timers *fakeAfter, p1, p2 *pushClient) {
	m = newTestMesh()
	idle = new(atomic.Int32)
	e = newEnv(t, m, func(c *Config) { c.Idle = func() { idle.Add(1) } })
	timers = &fakeAfter{}
	e.ads.fan.after = timers.after // before anything runs that reads it
	e.ads.Push(m.set("v1", baseState()), nil)
	cc := e.dial(t)
	p1 = newPushClient(t, e, cc, kind, "p1", clA)
	p2 = newPushClient(t, e, cc, kind, "p2", clA)
	eventually(t, "no push pending after the initial requests", e.ads.fan.quiet)
	return e, m, idle, timers, p1, p2
}

// pushEDS pushes a change of host A's endpoint as version.
func pushEDS(e *env, m *testMesh, version, ip string) {
	st := baseState()
	st.endpoints[hostA] = ip
	e.ads.Push(m.set(version, st), edsPush(hostA))
}

// takeEDS receives p's next response, an EDS one of version, without
// answering it; answer sends the answer.
func (p *pushClient) takeEDS(version string) (answer func()) {
	if p.sotw != nil {
		p.sotw.t.Helper()
		r := p.sotw.expect(EndpointType, version, clA)
		return func() { p.sotw.ack(r, p.names...) }
	}
	p.delta.t.Helper()
	r := p.delta.recv()
	if r.TypeUrl != EndpointType || r.SystemVersionInfo != version {
		p.delta.t.Fatalf("got %s %s; want EDS %s", shortType(r.TypeUrl), r.SystemVersionInfo, version)
	}
	return func() { p.delta.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce}) }
}

// Config.Idle waits for the clients to answer what was pushed to them, not
// only for the Sends to return: until then the fan-out's bytes are still
// being written and read.
func TestIdleWaitsForACKs(t *testing.T) {
	for _, kind := range []string{"sotw", "delta"} {
		t.Run(kind, func(t *testing.T) {
			e, m, idle, timers, p1, p2 := idleEnv(t, kind)
			base := idle.Load()
			pushEDS(e, m, "e1", "10.9.0.1")
			p1.expectEDS("e1", []string{clA}) // answered
			ack2 := p2.takeEDS("e1")
			eventually(t, "every Send returned, p2 still to answer, the wait started", func() bool { return e.ads.fan.sentOwing(1) && timers.armed() == 1 })
			if got := idle.Load() - base; got != 0 {
				t.Fatalf("Idle called %d times with p2's answer still owed", got)
			}
			ack2()
			eventually(t, "Idle after p2's ACK", func() bool { return idle.Load()-base == 1 })
			timers.fire(t, 0)
			p1.barrier()
			p2.barrier()
			if got := idle.Load() - base; got != 1 {
				t.Fatalf("Idle called %d times for one fan-out, want 1", got)
			}
		})
	}
}

// A client that does not answer keeps Idle back only until the wait runs
// out; one whose stream ends owes nothing.
func TestIdleDespiteSilentClient(t *testing.T) {
	for _, kind := range []string{"sotw", "delta"} {
		t.Run(kind, func(t *testing.T) {
			e, m, idle, timers, p1, p2 := idleEnv(t, kind)
			base := idle.Load()
			pushEDS(e, m, "e1", "10.9.0.1")
			p1.expectEDS("e1", []string{clA})
			p2.takeEDS("e1") // never answered
			eventually(t, "every Send returned, p2 still to answer, the wait started", func() bool { return e.ads.fan.sentOwing(1) && timers.armed() == 1 })
			timers.fire(t, 0)
			if got := idle.Load() - base; got != 1 {
				t.Fatalf("Idle called %d times once the wait ran out, want 1", got)
			}

			// The next fan-out waits for p2 again; its stream ends instead.
			pushEDS(e, m, "e2", "10.9.0.2")
			p1.expectEDS("e2", []string{clA})
			p2.takeEDS("e2")
			eventually(t, "every Send returned, p2 still to answer, the wait started", func() bool { return e.ads.fan.sentOwing(1) && timers.armed() == 2 })
			if got := idle.Load() - base; got != 1 {
				t.Fatalf("Idle called %d times with p2's answers owed, want 1", got)
			}
			if p2.sotw != nil {
				p2.sotw.stream.CloseSend()
			} else {
				p2.delta.stream.CloseSend()
			}
			eventually(t, "Idle once p2's stream ended", func() bool { return idle.Load()-base == 2 })
			timers.fire(t, 1)
			p1.barrier()
			if got := idle.Load() - base; got != 2 {
				t.Fatalf("Idle called %d times, want 2", got)
			}
		})
	}
}
