package upstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// connTracker counts a test server's open connections.
type connTracker struct {
	mu   sync.Mutex
	open map[net.Conn]bool
}

func (ct *connTracker) state(c net.Conn, s http.ConnState) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	switch s {
	case http.StateNew:
		ct.open[c] = true
	case http.StateClosed, http.StateHijacked:
		delete(ct.open, c)
	}
}

func (ct *connTracker) count() int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return len(ct.open)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("still not: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTLSChangeDrainsOldPool: when a cluster's TLS settings change, its
// hosts get new pools; the old pool's idle connection closes at once and
// its busy one when its request ends (Envoy drains the old pools). Before,
// both stayed open, the busy one back in a pool nobody used, until the peer
// closed them.
func TestTLSChangeDrainsOldPool(t *testing.T) {
	ct := &connTracker{open: map[net.Conn]bool{}}
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = ct.state
	srv.StartTLS()
	defer srv.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before srv.Close, which waits for the handler
	addr := srv.Listener.Addr().String()

	m := NewManager(slog.New(slog.DiscardHandler))
	m.TLS = tlsconfig.NewBuilder(nil, nil)
	clusterWith := func(sni string) *Cluster {
		cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, ConnectTimeout: time.Second,
			MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024,
			TLS: &xdsparse.TLSContext{Upstream: true, SNI: sni, Key: "sni=" + sni},
			Endpoints: &xdsparse.EndpointSet{Name: "c", Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{
				{Address: addr, Weight: 1, Healthy: true}}}}}}
		return m.Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
	}
	get := func(c *Cluster, path string) error {
		resp, err := c.Pick(PickOptions{}).RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: path, ContentLength: -1})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && (resp.Status != 200 || string(b) != "ok") {
			err = fmt.Errorf("status %d body %q", resp.Status, b)
		}
		return err
	}

	c := clusterWith("one")
	slow := make(chan error, 1)
	go func() { slow <- get(c, "/slow") }() // a busy connection
	waitFor(t, "the slow request's connection open", func() bool { return ct.count() == 1 })
	if err := get(c, "/"); err != nil { // a second one, left idle
		t.Fatal(err)
	}
	if n := ct.count(); n != 2 {
		t.Fatalf("%d connections open, want a busy and an idle one", n)
	}

	c = clusterWith("two")
	waitFor(t, "the old pool's idle connection closed after the TLS change", func() bool { return ct.count() == 1 })
	if err := get(c, "/"); err != nil { // the new pool's own connection
		t.Fatal(err)
	}
	if n := ct.count(); n != 2 {
		t.Fatalf("%d connections open, want the busy old one and the new one", n)
	}
	unblock()
	if err := <-slow; err != nil {
		t.Fatalf("the request in flight on the old pool: %v", err)
	}
	waitFor(t, "the old pool's busy connection closed when its request ended", func() bool { return ct.count() == 1 })
	if err := get(c, "/"); err != nil {
		t.Fatal(err)
	}
	if n := ct.count(); n != 1 {
		t.Errorf("%d connections open, want the new pool's one, reused", n)
	}
}

// TestRemovedHostDrains: a host that leaves its cluster's endpoints has its
// busy connection closed when the request on it ends (before, it went back
// to the idle list of a pool nobody reached any more).
func TestRemovedHostDrains(t *testing.T) {
	ct := &connTracker{open: map[net.Conn]bool{}}
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = ct.state
	srv.Start()
	defer srv.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	m := NewManager(slog.New(slog.DiscardHandler))
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.EDS, EDSName: "c", ConnectTimeout: time.Second, MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024}
	es := &xdsparse.EndpointSet{Name: "c", Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{
		{Address: srv.Listener.Addr().String(), Weight: 1, Healthy: true}}}}}
	c := m.Update(map[string]*xdsparse.Cluster{"c": cfg}, map[string]*xdsparse.EndpointSet{"c": es})["c"]
	h := c.Pick(PickOptions{})
	done := make(chan error, 1)
	go func() {
		resp, err := h.RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: "/", ContentLength: -1})
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the request's connection open", func() bool { return ct.count() == 1 })
	m.Update(map[string]*xdsparse.Cluster{"c": cfg}, map[string]*xdsparse.EndpointSet{"c": {Name: "c"}})
	unblock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed host's connection closed when its request ended", func() bool { return ct.count() == 0 })
}
