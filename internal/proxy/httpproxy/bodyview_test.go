package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/http1"
)

// TestWrappersPassTakeBufferedOn: a body taken whole from the connection's
// read buffer counts in the telemetry's request bytes (and gRPC messages)
// and, for the stream timer, is activity and the request's end, as reading
// it would be; a body that cannot be taken is left alone.
func TestWrappersPassTakeBufferedOn(t *testing.T) {
	msg := "\x00\x00\x00\x00\x02hi\x00\x00\x00\x00\x01!"
	br := bufio.NewReader(strings.NewReader(msg + "GET / HTTP/1.1\r\n"))
	br.Peek(len(msg))
	st := &streamTimer{idle: time.Hour}
	frames := &grpcFrames{}
	c := &countReader{r: &timedBody{r: http1.NewBody(br, &http1.Head{ContentLength: int64(len(msg))}, false), st: st}, frames: frames}
	data, ok := takeBuffered(c, 1024)
	if !ok || string(data) != msg {
		t.Fatalf("took %q, %v", data, ok)
	}
	if c.n != int64(len(msg)) || frames.count.Load() != 2 {
		t.Errorf("counted %d bytes and %d messages, want %d and 2", c.n, frames.count.Load(), len(msg))
	}
	if !st.reqDone() || st.last.Load() == 0 {
		t.Error("the take was not the stream's activity and end")
	}
	other := &countReader{r: &timedBody{r: strings.NewReader("x"), st: st}}
	if _, ok := takeBuffered(other, 1024); ok || other.n != 0 {
		t.Errorf("took from a body without TakeBuffered (%d bytes counted)", other.n)
	}
}

// bodyBackend answers each request with the body it got; failFirst makes
// it answer every path's first attempt 503 instead. It records the
// bodies each path got, primaries and "-shadow" copies apart, and holds
// the copies until release is closed.
type bodyBackend struct {
	failFirst bool
	release   chan struct{}
	mu        sync.Mutex
	got       map[string][]string // path (with "shadow" before it for copies) -> bodies
}

func (b *bodyBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != "POST" { // a request read from the wrong offset
		w.WriteHeader(400)
		return
	}
	key := r.URL.Path
	if strings.Contains(r.Host, "-shadow") {
		key = "shadow" + key
	}
	b.mu.Lock()
	b.got[key] = append(b.got[key], string(body))
	first := len(b.got[key]) == 1
	b.mu.Unlock()
	if strings.HasPrefix(key, "shadow") {
		<-b.release
		return
	}
	if b.failFirst && first {
		w.WriteHeader(503)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body))) // not chunked when large
	w.Write(body)
}

func (b *bodyBackend) bodies(key string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got[key]...)
}

// TestBodyFromReadBuffer: request bodies that arrive with their heads go
// upstream from the connection's read buffer. Each request on one
// connection overwrites that buffer: the upstream, every retry and every
// mirrored copy (held until all requests were answered) must still get
// each request's own bytes, with chunked bodies, bodies larger than what
// one read buffers and pipelined requests in between.
func TestBodyFromReadBuffer(t *testing.T) {
	for _, mode := range []string{"plain", "retried", "mirrored"} {
		t.Run(mode, func(t *testing.T) {
			bb := &bodyBackend{failFirst: mode == "retried"}
			p := startBodyProxy(t, bb, proxyOpts{routes: bodyRouteMode(mode)})
			nc := dialBodyProxy(t, p)
			br := bufio.NewReader(nc)
			post := func(path, body string) string {
				return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: shop:9080\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
			}
			chunked := func(path, body string) string {
				return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: shop:9080\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", path, len(body), body)
			}
			big1, big2 := strings.Repeat("a", 3000), strings.Repeat("b", 3000)
			// Each write is one or more whole requests; a write waits for
			// the answers to the previous one, so the proxy reads each
			// into its buffer from the start again.
			writes := [][]struct{ path, wire, body string }{
				{{"/1", post("/1", "first"), "first"}},
				{{"/2", post("/2", "second"), "second"}},
				{{"/3", post("/3", "third-1"), "third-1"}, {"/4", chunked("/4", "fourth"), "fourth"}, {"/5", post("/5", "fifth-12"), "fifth-12"}},
				{{"/6", post("/6", big1), big1}, {"/7", post("/7", big2), big2}, {"/8", post("/8", "eighth"), "eighth"}},
				{{"/9", post("/9", "ninth"), "ninth"}},
			}
			for _, w := range writes {
				var all strings.Builder
				for _, r := range w {
					all.WriteString(r.wire)
				}
				if _, err := io.WriteString(nc, all.String()); err != nil {
					t.Fatal(err)
				}
				for _, r := range w {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("%s: %v", r.path, err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(b) != r.body {
						t.Fatalf("%s: %d %.20q, want 200 %.20q", r.path, resp.StatusCode, b, r.body)
					}
				}
			}
			for _, w := range writes {
				for _, r := range w {
					want := []string{r.body}
					if mode == "retried" {
						want = []string{r.body, r.body}
					}
					if got := bb.bodies(r.path); strings.Join(got, "|") != strings.Join(want, "|") {
						t.Errorf("%s: the upstream got %.40q, want %.40q", r.path, got, want)
					}
				}
			}
			if mode != "mirrored" {
				// Responses taken whole from the upstream connection's
				// buffer leave it at the next response: one connection
				// carried every exchange.
				if n := p.srv.cfg.Load().Clusters["c"].Stats.CxTotal.Load(); n != 1 {
					t.Errorf("%d upstream connections, want 1", n)
				}
				return
			}
			for _, w := range writes {
				for _, r := range w {
					deadline := time.Now().Add(10 * time.Second)
					for len(bb.bodies("shadow"+r.path)) == 0 && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					if got := bb.bodies("shadow" + r.path); len(got) != 1 || got[0] != r.body {
						t.Errorf("%s: the mirror got %.40q, want %.40q", r.path, got, r.body)
					}
				}
			}
		})
	}
}

// TestExpectContinueBody: a client that waits for 100 Continue sends the
// body after the head; body and the next request, sent together, go
// upstream each with its own bytes.
func TestExpectContinueBody(t *testing.T) {
	p := startBodyProxy(t, &bodyBackend{}, proxyOpts{})
	nc := dialBodyProxy(t, p)
	br := bufio.NewReader(nc)
	io.WriteString(nc, "POST /1 HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("before the body: %q, %v", line, err)
	}
	if line, _ = br.ReadString('\n'); line != "\r\n" {
		t.Fatalf("100 Continue not followed by an empty line: %q", line)
	}
	io.WriteString(nc, "firstPOST /2 HTTP/1.1\r\nHost: shop\r\nContent-Length: 6\r\n\r\nsecond")
	for _, want := range []string{"first", "second"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("%d %q, want 200 %q", resp.StatusCode, b, want)
		}
	}
}

// TestBodyCutBeforeResponse: a client that goes away in the middle of its
// body gets no response (no write buffer was taken for it) and the proxy
// goes on serving.
func TestBodyCutBeforeResponse(t *testing.T) {
	p := startBodyProxy(t, &bodyBackend{}, proxyOpts{})
	for _, req := range []string{
		"POST /cut HTTP/1.1\r\nHost: shop\r\nContent-Length: 100\r\n\r\nshort",
		"POST /ok HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\n\r\nok",
	} {
		nc := dialBodyProxy(t, p)
		io.WriteString(nc, req)
		nc.CloseWrite()
		got, err := io.ReadAll(nc)
		nc.Close()
		if err != nil {
			t.Fatal(err)
		}
		cut := strings.Contains(req, "/cut")
		if cut && len(got) != 0 {
			t.Errorf("a request cut in its body was answered: %q", got)
		}
		if !cut && !strings.HasPrefix(string(got), "HTTP/1.1 200 ") {
			t.Errorf("the next connection got %q", got)
		}
	}
}

// startBodyProxy serves bb on a loopback listener (its release channel and
// record made here) and starts a test proxy in front of it with o.
func startBodyProxy(t *testing.T, bb *bodyBackend, o proxyOpts) *testProxy {
	t.Helper()
	bb.release, bb.got = make(chan struct{}), map[string][]string{}
	t.Cleanup(func() { close(bb.release) })
	srv := &http.Server{Handler: bb}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return startTestProxy(t, ln.Addr().String(), o)
}

// dialBodyProxy connects to p with a deadline that ends a stuck test; the
// connection is closed when the test ends (a test may close it earlier).
func dialBodyProxy(t *testing.T, p *testProxy) *net.TCPConn {
	t.Helper()
	nc, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return nc.(*net.TCPConn)
}

// bodyRouteMode returns startBodyProxy's route edit for a body test's mode:
// "retried" retries 5xx twice on cluster c's routes, "mirrored" mirrors
// every request to c, anything else leaves the routes as they are.
func bodyRouteMode(mode string) func(*routev3.RouteConfiguration) {
	return func(rc *routev3.RouteConfiguration) {
		for _, r := range rc.VirtualHosts[0].Routes {
			ra := r.GetRoute()
			if ra.GetCluster() != "c" {
				continue
			}
			switch mode {
			case "retried":
				ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(2)}
			case "mirrored":
				ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "c",
					RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}}}}
			}
		}
	}
}
