package upstream

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// edsVersion is the k-th EDS update of TestEDSUpdatesDuringPicks: every
// endpoint has weight k and locality zone-k, so a reader can tell a torn
// view (a weight of one update with the locality of another).
func edsVersion(k int) *xdsparse.EndpointSet {
	es := &xdsparse.EndpointSet{Name: "eds", Localities: []xdsparse.LocalityGroup{{}}}
	for i := range 4 {
		es.Localities[0].Endpoints = append(es.Localities[0].Endpoints, xdsparse.Endpoint{
			Address: fmt.Sprintf("127.0.0.%d:80", i+1), Weight: uint32(k), Locality: fmt.Sprintf("zone-%d", k), Healthy: true})
	}
	return es
}

// TestEDSUpdatesDuringPicks runs EDS updates that change every host's
// weight and locality while requests pick hosts and the admin reads them.
// Run with -race: hosts are shared by the manager and the pick path.
func TestEDSUpdatesDuringPicks(t *testing.T) {
	for _, lb := range []xdsparse.LBPolicy{xdsparse.RoundRobin, xdsparse.LeastRequest, xdsparse.RingHash} {
		t.Run(lb.String(), func(t *testing.T) {
			cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.EDS, EDSName: "eds", LB: lb, ConnectTimeout: time.Second,
				MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024, RingSize: 64}
			m := NewManager(slog.New(slog.DiscardHandler))
			cfgs := map[string]*xdsparse.Cluster{"c": cfg}
			c := m.Update(cfgs, map[string]*xdsparse.EndpointSet{"eds": edsVersion(1)})["c"]
			// Readers run until the updates are done, then once more.
			var updated atomic.Bool
			var wg sync.WaitGroup
			var mu sync.Mutex
			var errs []error
			fail := func(err error) {
				mu.Lock()
				defer mu.Unlock()
				if len(errs) < 5 {
					errs = append(errs, err)
				}
			}
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := uint64(0); ; n++ {
						last := updated.Load()
						h := c.Pick(PickOptions{Hash: n, HasHash: g%2 == 0})
						if h == nil {
							fail(fmt.Errorf("no host picked"))
						} else {
							h.Active.Add(1)
							h.Active.Add(-1)
						}
						if last {
							return
						}
					}
				}()
			}
			wg.Add(1)
			go func() { // what the admin's /clusters and the collectors' dial read
				defer wg.Done()
				for {
					last := updated.Load()
					for _, e := range c.Endpoints() {
						if want := fmt.Sprintf("zone-%d", e.Weight); e.Locality != want {
							fail(fmt.Errorf("host %s: weight %d with locality %s (torn update)", e.Host.Addr, e.Weight, e.Locality))
						}
					}
					if last {
						return
					}
				}
			}()
			for k := 2; k < 400; k++ {
				m.Update(cfgs, map[string]*xdsparse.EndpointSet{"eds": edsVersion(k)})
			}
			updated.Store(true)
			wg.Wait()
			for _, err := range errs {
				t.Error(err)
			}
			if e := c.Endpoints(); len(e) != 4 || e[0].Weight != 399 || e[0].Locality != "zone-399" {
				t.Errorf("after the last update: %+v", e)
			}
		})
	}
}
