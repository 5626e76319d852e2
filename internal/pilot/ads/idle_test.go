package ads

import (
	"strings"
	"sync/atomic"
	"testing"

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
			eventually(t, "no push pending after the initial requests", func() bool { return e.ads.busy.Load() == 0 })
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
