package upstream

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// TestOriginalDstHostsExpire: every new original destination made a host
// (and a pool) that stayed until the next xDS push, so a client connecting
// to many addresses grew the proxy without bound. Hosts unused for the
// cleanup interval are now dropped, unless requests are in flight.
func TestOriginalDstHostsExpire(t *testing.T) {
	m := NewManager(slog.New(slog.DiscardHandler))
	now := time.Unix(1_000_000, 0)
	m.now = func() time.Time { return now }
	c := &Cluster{Cfg: &xdsparse.Cluster{Name: "PassthroughCluster"}, Stats: &Stats{}}
	busy := m.OriginalDstHost(c, "10.0.0.1:80")
	busy.Active.Add(1)
	for i := range 1000 {
		m.OriginalDstHost(c, fmt.Sprintf("10.1.%d.%d:443", i/256, i%256))
	}
	if n := len(m.hosts); n != 1001 {
		t.Fatalf("%d hosts, want 1001", n)
	}
	if again := m.OriginalDstHost(c, "10.1.0.5:443"); again != m.hosts[hostKey{"PassthroughCluster", "10.1.0.5:443"}] {
		t.Fatal("a host in use within the interval was not reused")
	}
	now = now.Add(DefaultOrigDstCleanup)
	fresh := m.OriginalDstHost(c, "10.2.0.1:80")
	if n := len(m.hosts); n != 2 {
		t.Fatalf("after the cleanup interval: %d hosts, want the busy one and the new one", n)
	}
	if m.hosts[hostKey{"PassthroughCluster", "10.0.0.1:80"}] != busy || m.hosts[hostKey{"PassthroughCluster", "10.2.0.1:80"}] != fresh {
		t.Fatal("the host with a request in flight or the new host was dropped")
	}
}
