package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

func endpoints(name string, weights ...uint32) *xdsparse.EndpointSet {
	es := &xdsparse.EndpointSet{Name: name, Localities: []xdsparse.LocalityGroup{{}}}
	for i, w := range weights {
		es.Localities[0].Endpoints = append(es.Localities[0].Endpoints,
			xdsparse.Endpoint{Address: fmt.Sprintf("127.0.0.%d:80", i+1), Weight: w, Healthy: true})
	}
	return es
}

func cluster(t *testing.T, lb xdsparse.LBPolicy, es *xdsparse.EndpointSet) *Cluster {
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, LB: lb, Endpoints: es, ConnectTimeout: time.Second,
		MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024, RingSize: 1024}
	if lb == xdsparse.Maglev {
		cfg.RingSize = 65537
	}
	m := NewManager(slog.New(slog.DiscardHandler))
	return m.Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
}

func TestBalancersSpreadByWeight(t *testing.T) {
	for _, lb := range []xdsparse.LBPolicy{xdsparse.RoundRobin, xdsparse.Random, xdsparse.LeastRequest} {
		t.Run(lb.String(), func(t *testing.T) {
			c := cluster(t, lb, endpoints("c", 1, 3))
			counts := map[string]int{}
			for i := 0; i < 4000; i++ {
				counts[c.Pick(PickOptions{}).Addr]++
			}
			a, b := counts["127.0.0.1:80"], counts["127.0.0.2:80"]
			if a < 700 || a > 1300 || b < 2700 || b > 3300 {
				t.Errorf("weights 1:3 gave %d:%d", a, b)
			}
		})
	}
}

func TestLeastRequestAvoidsBusyHost(t *testing.T) {
	c := cluster(t, xdsparse.LeastRequest, endpoints("c", 1, 1))
	c.Hosts()[0].Active.Store(100)
	busy := 0
	for i := 0; i < 1000; i++ {
		if c.Pick(PickOptions{}) == c.Hosts()[0] {
			busy++
		}
	}
	// Only when both random choices land on the busy host (~1/4).
	if busy > 350 {
		t.Errorf("busy host picked %d/1000 times", busy)
	}
}

func TestConsistentHashing(t *testing.T) {
	for _, lb := range []xdsparse.LBPolicy{xdsparse.RingHash, xdsparse.Maglev} {
		t.Run(lb.String(), func(t *testing.T) {
			c := cluster(t, lb, endpoints("c", 1, 1, 1, 1))
			seen := map[*Host]bool{}
			moved := 0
			c5 := cluster(t, lb, endpoints("c", 1, 1, 1, 1, 1))
			for i := 0; i < 1000; i++ {
				k := Hash64(fmt.Sprint("user-", i))
				h1 := c.Pick(PickOptions{Hash: k, HasHash: true})
				if h2 := c.Pick(PickOptions{Hash: k, HasHash: true}); h1 != h2 {
					t.Fatal("same key, different host")
				}
				seen[h1] = true
				if c5.Pick(PickOptions{Hash: k, HasHash: true}).Addr != h1.Addr {
					moved++
				}
			}
			if len(seen) != 4 {
				t.Errorf("keys reached %d of 4 hosts", len(seen))
			}
			// Adding a fifth host should move about 1/5 of the keys, not most.
			if moved > 350 {
				t.Errorf("adding a host moved %d/1000 keys", moved)
			}
		})
	}
}

func TestPickExcludesPreviousHosts(t *testing.T) {
	c := cluster(t, xdsparse.RoundRobin, endpoints("c", 1, 1, 1))
	first := c.Pick(PickOptions{})
	for i := 0; i < 50; i++ {
		if h := c.Pick(PickOptions{Exclude: func(h *Host) bool { return h == first }, Attempts: 5}); h == first {
			t.Fatal("excluded host picked")
		}
	}
}

// TestRetryLeavesFastFailingHost: least request prefers a host whose
// connections are refused (it has no active requests while the others are
// busy); a retry excluding it must still reach another host, as the proxy
// restart test showed (3 % of retries went back to the dead host twice).
func TestRetryLeavesFastFailingHost(t *testing.T) {
	c := cluster(t, xdsparse.LeastRequest, endpoints("c", 1, 1))
	dead, busy := c.Hosts()[0], c.Hosts()[1]
	busy.Active.Store(8)
	for i := 0; i < 2000; i++ {
		if h := c.Pick(PickOptions{Exclude: func(h *Host) bool { return h == dead }, Attempts: 5}); h != busy {
			t.Fatalf("pick %d: the excluded host again", i)
		}
	}
	// With every host excluded the last pick stands (Envoy's rule).
	if h := c.Pick(PickOptions{Exclude: func(*Host) bool { return true }, Attempts: 5}); h == nil {
		t.Fatal("no host when all are excluded")
	}
}

func TestUpdateKeepsHostsAndPools(t *testing.T) {
	m := NewManager(slog.New(slog.DiscardHandler))
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.EDS, EDSName: "c", ConnectTimeout: time.Second}
	c1 := m.Update(map[string]*xdsparse.Cluster{"c": cfg}, map[string]*xdsparse.EndpointSet{"c": endpoints("c", 1, 1)})["c"]
	h := c1.Hosts()[0]
	c2 := m.Update(map[string]*xdsparse.Cluster{"c": cfg}, map[string]*xdsparse.EndpointSet{"c": endpoints("c", 1, 1, 1)})["c"]
	if c1 != c2 || c2.Hosts()[0] != h || len(c2.Hosts()) != 3 {
		t.Error("an endpoint update replaced the cluster or an unchanged host")
	}
	unhealthy := endpoints("c", 1)
	unhealthy.Localities[0].Endpoints[0].Healthy = false
	c3 := m.Update(map[string]*xdsparse.Cluster{"c": cfg}, map[string]*xdsparse.EndpointSet{"c": unhealthy})["c"]
	if c3.Pick(PickOptions{}) != nil {
		t.Error("picked an unhealthy host")
	}
}

func TestHTTP1PoolReusesConnections(t *testing.T) {
	var conns atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	defer srv.Close()
	c := cluster(t, xdsparse.RoundRobin, &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{
		{Address: ln.Addr().String(), Weight: 1, Healthy: true}}}}})
	for i := 0; i < 5; i++ {
		h := c.Pick(PickOptions{})
		resp, err := h.RoundTrip(context.Background(), &Request{Method: "POST", Authority: "x", Path: fmt.Sprintf("/p%d?q", i), Body: []byte("body"), ContentLength: 4})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		status := resp.Status
		resp.Body.Close()
		if want := fmt.Sprintf("POST /p%d?q body", i); string(b) != want || status != 200 {
			t.Fatalf("got %d %q, want %q", status, b, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1 (keep-alive)", n)
	}
}

func TestConnectFailureAndTimeout(t *testing.T) {
	c := cluster(t, xdsparse.RoundRobin, &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{
		{Address: "127.0.0.1:1", Weight: 1, Healthy: true}}}}})
	_, err := c.Pick(PickOptions{}).RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: "/", ContentLength: -1})
	if !errors.Is(err, ErrConnect) {
		t.Errorf("err %v, want ErrConnect", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // never answers
		}
	}()
	c2 := cluster(t, xdsparse.RoundRobin, &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{
		{Address: ln.Addr().String(), Weight: 1, Healthy: true}}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c2.Pick(PickOptions{}).RoundTrip(ctx, &Request{Method: "GET", Authority: "x", Path: "/", ContentLength: -1})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("err %v, want ErrTimeout", err)
	}
}

func TestMaxConnectionsOverflow(t *testing.T) {
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
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, ConnectTimeout: time.Second, MaxConnections: 1, MaxRequests: 10,
		Endpoints: &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{{Address: ln.Addr().String(), Weight: 1, Healthy: true}}}}}}
	c := NewManager(slog.New(slog.DiscardHandler)).Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
	h := c.Pick(PickOptions{})
	go h.RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: "/", ContentLength: -1})
	<-entered // the only allowed connection is busy now
	_, err = h.RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: "/", ContentLength: -1})
	if !errors.Is(err, ErrOverflow) {
		t.Fatalf("err %v, want ErrOverflow", err)
	}
	if c.Stats.RqPendingOverflow.Load() != 1 {
		t.Errorf("overflow counter %d", c.Stats.RqPendingOverflow.Load())
	}
}

// After the upstream closed every idle keep-alive connection, the next request
// still succeeds: each stale pooled connection is discarded in turn.
func TestHTTP1PoolSkipsStaleConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var inflight atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inflight.Add(1) <= 3 {
			<-release // hold the first three so the pool opens three connections
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := cluster(t, xdsparse.RoundRobin, &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{
		{Address: ln.Addr().String(), Weight: 1, Healthy: true}}}}})
	get := func() error {
		resp, err := c.Pick(PickOptions{}).RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: "/"})
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { errs <- get() }()
	}
	for inflight.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	srv.SetKeepAlivesEnabled(false) // closes the three idle connections
	time.Sleep(50 * time.Millisecond)
	if err := get(); err != nil {
		t.Fatalf("request after the upstream closed its idle connections: %v", err)
	}
}

// A cluster that uses the downstream protocol speaks HTTP/2 upstream exactly
// for requests that came in over HTTP/2.
func TestUseDownstreamProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	defer srv.Close()
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, LB: xdsparse.RoundRobin, ConnectTimeout: time.Second,
		MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024, UseDownstreamProtocol: true,
		Endpoints: &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{{Address: ln.Addr().String(), Weight: 1, Healthy: true}}}}}}
	c := NewManager(slog.New(slog.DiscardHandler)).Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
	for _, tt := range []struct {
		downstreamH2 bool
		want         string
	}{{false, "HTTP/1.1"}, {true, "HTTP/2.0"}} {
		resp, err := c.Pick(PickOptions{}).RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: "/", DownstreamHTTP2: tt.downstreamH2})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tt.want {
			t.Errorf("downstream HTTP/2 %v: upstream spoke %q, want %q", tt.downstreamH2, b, tt.want)
		}
	}
}
