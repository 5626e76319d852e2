package upstream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// With max_connections busy, up to max_pending_requests wait for a
// connection (and get it when one is released); the next one overflows.
func TestPendingRequestsWaitForAConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release, entered := make(chan struct{}), make(chan struct{}, 4)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, ConnectTimeout: time.Second, MaxConnections: 1, MaxPending: 1, MaxRequests: 10,
		Endpoints: &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{{Address: ln.Addr().String(), Weight: 1, Healthy: true}}}}}}
	c := NewManager(slog.New(slog.DiscardHandler)).Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
	h := c.Pick(PickOptions{})
	get := func(path string) error {
		resp, err := h.RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: path, ContentLength: -1})
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	first := make(chan error, 1)
	go func() { first <- get("/slow") }()
	<-entered // the only connection is busy
	queued := make(chan error, 1)
	go func() { queued <- get("/queued") }()
	for { // wait until the second request is queued
		h.connPool().mu.Lock()
		n := len(h.connPool().waiters)
		h.connPool().mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := get("/third"); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third request: err %v, want ErrOverflow (one pending allowed)", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first: %v", err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("queued request failed instead of waiting for the connection: %v", err)
	}
	if n := c.Stats.RqPendingOverflow.Load(); n != 1 {
		t.Errorf("overflow counter %d, want 1", n)
	}
	if c.Stats.CxTotal.Load() != 1 {
		t.Errorf("%d connections opened, want 1", c.Stats.CxTotal.Load())
	}
}

// A queued request gives up with its deadline.
func TestPendingRequestTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})}
	go srv.Serve(ln)
	defer srv.Close()
	defer close(release)
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, ConnectTimeout: time.Second, MaxConnections: 1, MaxPending: 5, MaxRequests: 10,
		Endpoints: &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{{Address: ln.Addr().String(), Weight: 1, Healthy: true}}}}}}
	c := NewManager(slog.New(slog.DiscardHandler)).Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
	h := c.Pick(PickOptions{})
	go h.RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: "/", ContentLength: -1})
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.RoundTrip(ctx, &Request{Method: "GET", Authority: "x", Path: "/", ContentLength: -1}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
	h.connPool().mu.Lock()
	defer h.connPool().mu.Unlock()
	if len(h.connPool().waiters) != 0 {
		t.Errorf("%d waiters left after the deadline", len(h.connPool().waiters))
	}
}

func ejectAll(c *Cluster, n int) {
	for _, h := range c.Hosts()[:n] {
		h.outlier.ejectedUntil.Store(time.Now().Add(time.Hour).UnixNano())
	}
}

// healthy_panic_threshold: under it the balancer ignores ejections; at 0 it
// never does, and with every host ejected there is no host.
func TestPanicThreshold(t *testing.T) {
	for _, tc := range []struct {
		threshold float64
		ejected   int
		wantNil   bool
		ejectedOK bool // an ejected host may be picked (panic)
	}{
		{threshold: 0, ejected: 4, wantNil: true},
		{threshold: 0, ejected: 3},
		{threshold: 50, ejected: 1},
		{threshold: 50, ejected: 3, ejectedOK: true},
		{threshold: 50, ejected: 4, ejectedOK: true},
	} {
		c := cluster(t, xdsparse.RoundRobin, endpoints("c", 1, 1, 1, 1))
		c.Cfg.Outlier = &xdsparse.OutlierDetection{}
		c.Cfg.PanicThreshold = tc.threshold
		ejectAll(c, tc.ejected)
		sawEjected := false
		for i := 0; i < 40; i++ {
			h := c.Pick(PickOptions{})
			if h == nil {
				if !tc.wantNil {
					t.Fatalf("%+v: no host", tc)
				}
				continue
			}
			if tc.wantNil {
				t.Fatalf("%+v: picked %s with every host ejected and panic disabled", tc, h.Addr)
			}
			if !c.usable(h) {
				sawEjected = true
			}
		}
		if sawEjected != tc.ejectedOK {
			t.Errorf("%+v: picked an ejected host %v, want %v", tc, sawEjected, tc.ejectedOK)
		}
	}
}
