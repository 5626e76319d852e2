package httpproxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/proxy/overload"
)

func withHCM(f func(*hcmv3.HttpConnectionManager)) proxyOpts { return proxyOpts{hcm: f} }

// noRouteTimeout turns the route timeout off (Istio's default), so only the
// stream timers bound a stream.
func noRouteTimeout(rc *routev3.RouteConfiguration) {
	for _, r := range rc.VirtualHosts[0].Routes {
		r.GetRoute().Timeout = durationpb.New(0)
	}
}

// readH1Status reads one response's status line (with a generous deadline:
// this is not a timing assertion, only a guard against hanging).
func readH1Status(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Status
}

// TestStreamIdleTimeoutStalledBody: a request body that stops arriving
// ends in a 408 instead of holding the stream open, over both codecs.
func TestStreamIdleTimeoutStalledBody(t *testing.T) {
	backend, seen := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, withHCM(func(h *hcmv3.HttpConnectionManager) {
		h.StreamIdleTimeout = durationpb.New(200 * time.Millisecond)
	}))
	t.Run("HTTP/1.1", func(t *testing.T) {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\nonly a little")
		if s := readH1Status(t, c); !strings.HasPrefix(s, "408") {
			t.Fatalf("status %q, want 408", s)
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		c := dialH2(t, p.addr, nil)
		c.request(1, "POST", "/upload", [][2]string{{"content-length", "100"}}, false)
		c.fr.WriteData(1, false, []byte("only a little"))
		r := c.response(1)
		if r.status() != "408" && !r.wasReset {
			t.Fatalf("status %q, want 408 or a reset", r.status())
		}
	})
	select {
	case s := <-seen:
		t.Fatalf("a partial body reached the upstream as a complete request: %q", s.body)
	default:
	}
}

// TestStreamIdleTimeoutSilentUpstream: with the route timeout off, an
// upstream that never answers is cut by stream_idle_timeout.
func TestStreamIdleTimeoutSilentUpstream(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	backend, _ := recordingBackend(t, false, func(w http.ResponseWriter, r *http.Request) { <-release })
	p := startTestProxy(t, backend, proxyOpts{routes: noRouteTimeout, hcm: func(h *hcmv3.HttpConnectionManager) {
		h.StreamIdleTimeout = durationpb.New(200 * time.Millisecond)
	}})
	c := dialH2(t, p.addr, nil)
	c.request(1, "GET", "/slow", nil, true)
	if r := c.response(1); r.status() != "408" {
		t.Fatalf("status %q, want 408: %v", r.status(), r.fields)
	}
}

// TestRequestTimeout: a body trickling in (so never idle) is still cut by
// request_timeout.
func TestRequestTimeout(t *testing.T) {
	backend, _ := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, withHCM(func(h *hcmv3.HttpConnectionManager) {
		h.RequestTimeout = durationpb.New(300 * time.Millisecond)
	}))
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /upload HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n")
	done := make(chan string)
	go func() { done <- readH1Status(t, c) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case s := <-done:
			if !strings.HasPrefix(s, "408") {
				t.Fatalf("status %q, want 408", s)
			}
			return
		case <-tick.C:
			io.WriteString(c, "1\r\nx\r\n") // never idle
		}
	}
}

// TestMaxConnectionDuration: past max_connection_duration an HTTP/1
// connection is closed once idle and an HTTP/2 connection gets a GOAWAY.
func TestMaxConnectionDuration(t *testing.T) {
	backend, _ := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, withHCM(func(h *hcmv3.HttpConnectionManager) {
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxConnectionDuration: durationpb.New(200 * time.Millisecond)}
	}))
	t.Run("HTTP/1.1", func(t *testing.T) {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nhost: a\r\n\r\n")
		if s := readH1Status(t, c); !strings.HasPrefix(s, "200") {
			t.Fatalf("status %q", s)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("idle connection past its duration: read %d, %v; want EOF", n, err)
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		c := dialH2(t, p.addr, nil)
		c.request(1, "GET", "/", nil, true)
		if r := c.response(1); r.status() != "200" {
			t.Fatal(r.fields)
		}
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				t.Fatalf("no GOAWAY: %v", err)
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				if g.ErrCode != http2.ErrCodeNo {
					t.Fatalf("GOAWAY %v, want NO_ERROR", g.ErrCode)
				}
				return
			}
		}
	})
}

// TestOverloadSheds: above the shed watermark requests get Envoy's 503
// "envoy overloaded" with x-envoy-overloaded, over both codecs, and HTTP/1
// connections are not kept alive.
func TestOverloadSheds(t *testing.T) {
	backend, seen := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, proxyOpts{})
	ov := overload.New(overload.Config{HeapShed: 1}) // any heap is above 1 byte
	ov.Sample()
	p.srv.Overload = ov
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nhost: a\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("x-envoy-overloaded") != "true" || !resp.Close {
		t.Fatalf("HTTP/1.1: %v %v", resp, err)
	}
	h2 := dialH2(t, p.addr, nil)
	h2.request(1, "GET", "/", nil, true)
	if r := h2.response(1); r.status() != "503" || r.get("x-envoy-overloaded") != "true" {
		t.Fatalf("HTTP/2: %v", r.fields)
	}
	select {
	case s := <-seen:
		t.Fatalf("a shed request reached the upstream: %s", s.uri)
	default:
	}
	if ov.Stats.RequestsShed.Load() != 2 {
		t.Fatalf("RequestsShed %d", ov.Stats.RequestsShed.Load())
	}
}
