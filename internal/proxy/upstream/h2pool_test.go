package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// h2Cluster is an HTTP/2 cluster of one host.
func h2Cluster(t *testing.T, addr string, modify func(*xdsparse.Cluster)) (*Cluster, *Manager) {
	t.Helper()
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, LB: xdsparse.RoundRobin, ConnectTimeout: time.Second, HTTP2: true,
		MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024,
		Endpoints: &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{{Address: addr, Weight: 1, Healthy: true}}}}}}
	if modify != nil {
		modify(cfg)
	}
	m := NewManager(slog.New(slog.DiscardHandler))
	m.TLS = tlsconfig.NewBuilder(nil, nil)
	t.Cleanup(m.Close)
	return m.Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"], m
}

// frameServer accepts HTTP/2 connections and runs handle on each with a
// bare Framer after the SETTINGS exchange.
func frameServer(t *testing.T, handle func(conn int, fr *http2.Framer, enc func(id uint32, end bool, kv ...string))) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1) // the accept loop, so that its Adds never race Cleanup's Wait
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			i := int(n.Add(1))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				if _, err := io.ReadFull(nc, make([]byte, len(http2.ClientPreface))); err != nil {
					return
				}
				fr := http2.NewFramer(nc, nc)
				fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
				fr.WriteSettings()
				var hb bytes.Buffer
				he := hpack.NewEncoder(&hb)
				var wmu sync.Mutex
				enc := func(id uint32, end bool, kv ...string) {
					wmu.Lock()
					defer wmu.Unlock()
					hb.Reset()
					for j := 0; j+1 < len(kv); j += 2 {
						he.WriteField(hpack.HeaderField{Name: kv[j], Value: kv[j+1]})
					}
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: end, EndHeaders: true})
				}
				handle(i, fr, enc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), &n
}

// nextHeaders reads until a request's HEADERS (answering SETTINGS with ACK).
func nextHeaders(fr *http2.Framer) (*http2.MetaHeadersFrame, error) {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			return f, nil
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		}
	}
}

func drainFrames(fr *http2.Framer) {
	for {
		if _, err := fr.ReadFrame(); err != nil {
			return
		}
	}
}

func get(c *Cluster, body []byte) (int, string, error) {
	resp, err := c.Pick(PickOptions{}).RoundTrip(context.Background(), &Request{Method: "POST", Authority: "x", Path: "/", Body: body})
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.Status, string(b), err
}

// TestH2GoAwayRetriesUnprocessed: a request above a GOAWAY's
// last-stream-id is sent again on a new connection and succeeds; a
// REFUSED_STREAM is ErrRefused for the router's retry policy.
func TestH2GoAwayRetriesUnprocessed(t *testing.T) {
	addr, conns := frameServer(t, func(conn int, fr *http2.Framer, enc func(uint32, bool, ...string)) {
		h, err := nextHeaders(fr)
		if err != nil {
			return
		}
		switch conn {
		case 1: // the first connection goes away before processing anything
			fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		case 2:
			enc(h.StreamID, true, ":status", "200")
			if h, err = nextHeaders(fr); err == nil {
				fr.WriteRSTStream(h.StreamID, http2.ErrCodeRefusedStream)
			}
		}
		drainFrames(fr)
	})
	c, _ := h2Cluster(t, addr, nil)
	if st, _, err := get(c, []byte("x")); err != nil || st != 200 {
		t.Fatalf("request refused by GOAWAY: %d %v, want 200 from a second connection", st, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	if _, _, err := get(c, nil); !errors.Is(err, ErrRefused) {
		t.Errorf("REFUSED_STREAM: %v, want ErrRefused", err)
	}
}

// TestH2MaxConcurrentStreamsOpensConnections: with the cluster's
// max_concurrent_streams at 1, two requests at once use two connections.
func TestH2MaxConcurrentStreamsOpensConnections(t *testing.T) {
	release := make(chan struct{})
	addr, conns := frameServer(t, func(conn int, fr *http2.Framer, enc func(uint32, bool, ...string)) {
		h, err := nextHeaders(fr)
		if err != nil {
			return
		}
		<-release
		enc(h.StreamID, true, ":status", "200")
		drainFrames(fr)
	})
	c, _ := h2Cluster(t, addr, func(cfg *xdsparse.Cluster) { cfg.H2.MaxConcurrentStreams = 1 })
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { _, _, err := get(c, nil); errs <- err }()
	}
	waitFor(t, "two connections", func() bool { return conns.Load() == 2 })
	close(release)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestH2KeepaliveClosesDeadConnection: connection_keepalive closes a
// connection whose PING goes unanswered; the request on it fails and the
// next one gets a new connection.
func TestH2KeepaliveClosesDeadConnection(t *testing.T) {
	addr, conns := frameServer(t, func(conn int, fr *http2.Framer, enc func(uint32, bool, ...string)) {
		h, err := nextHeaders(fr)
		if err != nil {
			return
		}
		if conn > 1 {
			enc(h.StreamID, true, ":status", "200")
		}
		drainFrames(fr) // PINGs never acknowledged
	})
	c, _ := h2Cluster(t, addr, func(cfg *xdsparse.Cluster) {
		cfg.H2.KeepaliveInterval, cfg.H2.KeepaliveTimeout = 20*time.Millisecond, 100*time.Millisecond
	})
	if _, _, err := get(c, nil); !errors.Is(err, ErrReset) {
		t.Fatalf("request on a connection whose PING went unanswered: %v, want ErrReset", err)
	}
	if st, _, err := get(c, nil); err != nil || st != 200 {
		t.Fatalf("next request: %d %v", st, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestH2OverTLSWithALPN: an HTTP/2 cluster with a TLS transport socket
// negotiates h2 by ALPN; the request arrives as it was sent (no
// user-agent, no accept-encoding) and a gzip response is not decompressed.
func TestH2OverTLSWithALPN(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ua := r.Header["User-Agent"]
		_, ae := r.Header["Accept-Encoding"]
		w.Header().Set("content-encoding", "gzip")
		w.Header().Set("x-seen", r.Proto+" "+r.TLS.NegotiatedProtocol)
		if ua || ae {
			w.WriteHeader(400)
		}
		io.WriteString(w, "\x1f\x8bnot really gzip")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	for _, legacy := range []bool{false, true} { // the own client, and x/net's behind --legacy-http2-client
		m := NewManager(slog.New(slog.DiscardHandler))
		m.TLS = tlsconfig.NewBuilder(nil, nil)
		m.LegacyH2 = legacy
		cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, LB: xdsparse.RoundRobin, ConnectTimeout: time.Second, HTTP2: true,
			MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024,
			TLS:       &xdsparse.TLSContext{Upstream: true, SNI: "example.com", Key: "sni=example.com"},
			Endpoints: &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: []xdsparse.Endpoint{{Address: srv.Listener.Addr().String(), Weight: 1, Healthy: true}}}}}}
		c := m.Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
		resp, err := c.Pick(PickOptions{}).RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: "/", ContentLength: -1})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		// The Response is the pool's again once its body is closed.
		if resp.Status != 200 || resp.Header.Value("x-seen") != "HTTP/2.0 h2" || string(b) != "\x1f\x8bnot really gzip" {
			t.Errorf("legacy %v: status %d, seen %q, body %q", legacy, resp.Status, resp.Header.Value("x-seen"), b)
		}
		resp.Body.Close()
		m.Close()
	}
}

// TestH2MaxConnectionDurationDrains: an HTTP/2 connection past the
// cluster's max_connection_duration takes no new stream (the next request
// opens another connection) while its open stream completes; it closes
// once that stream ends (Envoy's pool drains it).
func TestH2MaxConnectionDurationDrains(t *testing.T) {
	release := make(chan struct{})
	addr, conns := frameServer(t, func(conn int, fr *http2.Framer, enc func(uint32, bool, ...string)) {
		h, err := nextHeaders(fr)
		if err != nil {
			return
		}
		if conn == 1 {
			<-release
		}
		enc(h.StreamID, true, ":status", "200")
		drainFrames(fr)
	})
	c, _ := h2Cluster(t, addr, func(cfg *xdsparse.Cluster) { cfg.MaxConnectionDuration = 50 * time.Millisecond })
	first := make(chan error, 1)
	go func() {
		st, _, err := get(c, nil)
		if err == nil && st != 200 {
			err = errors.New("not 200")
		}
		first <- err
	}()
	waitFor(t, "the first connection", func() bool { return conns.Load() == 1 })
	p := c.Hosts()[0].connPool()
	usable := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		n := 0
		for _, hc := range p.h2 {
			if hc.Usable() {
				n++
			}
		}
		return n
	}
	waitFor(t, "the first connection draining", func() bool { return usable() == 0 })
	p.mu.Lock()
	aged := p.h2[0]
	p.mu.Unlock()
	if st, _, err := get(c, nil); err != nil || st != 200 {
		t.Fatalf("request after the age limit: %d %v", st, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want a second one for the request after the age limit", n)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the stream open on the aged connection: %v, want it to complete", err)
	}
	waitFor(t, "the aged connection closed", aged.Closed)
}
