package httpproxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// stallingBackend answers requests after the first stall ones, which it
// holds (head unanswered, or the body cut after its first bytes when
// midBody) until the test ends. It returns the address and the number of
// requests seen; aborted counts stalled requests whose connection the
// proxy closed.
func stallingBackend(t *testing.T, h2 bool, stall int32, midBody bool) (string, *atomic.Int32) {
	addr, n, _ := stallingBackendAborts(t, h2, stall, midBody)
	return addr, n
}

func stallingBackendAborts(t *testing.T, h2 bool, stall int32, midBody bool) (string, *atomic.Int32, *atomic.Int32) {
	var n, aborted atomic.Int32
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	addr, _ := recordingBackend(t, h2, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > stall {
			io.WriteString(w, "ok")
			return
		}
		if midBody {
			w.Header().Set("content-length", "100")
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
			aborted.Add(1)
		}
	})
	return addr, &n, &aborted
}

// routeTimeouts sets the "/" route's timeout and, when perTry > 0, a retry
// policy with that per-try timeout.
func routeTimeouts(timeout, perTry time.Duration, retries uint32) func(*routev3.RouteConfiguration) {
	return func(rc *routev3.RouteConfiguration) {
		for _, r := range rc.VirtualHosts[0].Routes {
			ra := r.GetRoute()
			ra.Timeout = durationpb.New(timeout)
			if perTry > 0 {
				ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(retries),
					PerTryTimeout: durationpb.New(perTry)}
			}
		}
	}
}

func get(t *testing.T, addr string) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second} // a guard against hanging, not a timing assertion
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestRouteAndPerTryTimeouts: the route and per-try timeouts are deadlines
// of the upstream exchange (no timer or context per request). A per-try
// timeout retries on another attempt; the route timeout ends the request
// with Envoy's 504, or cuts a response body that stalls past it; over
// HTTP/1.1 and HTTP/2 upstreams.
func TestRouteAndPerTryTimeouts(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name+"/per-try timeout retries", func(t *testing.T) {
			backend, n := stallingBackend(t, h2, 1, false)
			p := startTestProxy(t, backend, proxyOpts{h2Upstream: h2, routes: routeTimeouts(20*time.Second, 200*time.Millisecond, 2)})
			status, body, err := get(t, p.addr)
			if status != 200 || body != "ok" || err != nil {
				t.Fatalf("got %d %q %v, want 200 ok", status, body, err)
			}
			if got := n.Load(); got != 2 {
				t.Errorf("backend saw %d requests, want 2 (one stalled, one retried)", got)
			}
		})
		t.Run(name+"/route timeout", func(t *testing.T) {
			backend, _ := stallingBackend(t, h2, 1000, false)
			p := startTestProxy(t, backend, proxyOpts{h2Upstream: h2, routes: routeTimeouts(200*time.Millisecond, 0, 0)})
			status, body, _ := get(t, p.addr)
			if status != 504 || body != "upstream request timeout" {
				t.Fatalf("got %d %q, want 504 upstream request timeout", status, body)
			}
		})
		t.Run(name+"/route timeout cuts a stalled body", func(t *testing.T) {
			backend, _ := stallingBackend(t, h2, 1000, true)
			p := startTestProxy(t, backend, proxyOpts{h2Upstream: h2, routes: routeTimeouts(300*time.Millisecond, 0, 0)})
			status, body, err := get(t, p.addr)
			if status != 200 || body != "partial" || err == nil {
				t.Fatalf("got %d %q %v, want 200 with a body cut after \"partial\"", status, body, err)
			}
		})
	}
}

// TestStreamContext: the stream's context behaves as a context: derived
// contexts and AfterFuncs end with it, Done made after the end is closed,
// the abort slot runs once, and a timer's cause is kept.
func TestStreamContext(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), followKey{}, "v"))
	defer cancelParent()
	st := newStream(parent, 0, 0, nil)
	if st.Value(followKey{}) != "v" {
		t.Error("Value does not reach the parent")
	}
	child, cancelChild := context.WithCancel(st)
	defer cancelChild()
	ran := make(chan struct{})
	context.AfterFunc(st, func() { close(ran) })
	stopped := context.AfterFunc(st, func() { t.Error("a stopped AfterFunc ran") })
	if !stopped() {
		t.Error("stop reported the func ran")
	}
	var aborts atomic.Int32
	st.SetAbort(func() { aborts.Add(1) })
	if st.Err() != nil {
		t.Fatal("ended early")
	}
	if st.stop() != nil {
		t.Error("a cause without a timer")
	}
	<-child.Done()
	<-ran
	<-st.Done()
	if aborts.Load() != 1 || st.ClearAbort() {
		t.Errorf("abort ran %d times, ClearAbort after the end = true", aborts.Load())
	}
	st.SetAbort(func() { aborts.Add(1) }) // already ended: runs at once
	if aborts.Load() != 2 || st.Err() != context.Canceled {
		t.Errorf("aborts %d, Err %v", aborts.Load(), st.Err())
	}

	// The parent's end ends an HTTP/2 stream; a timer's end keeps its cause.
	ctx2, st2 := startStreamTimer(parent, 0, 0, nil)
	cancelParent()
	<-ctx2.Done()
	st2.stop()
	_, st3 := startStreamTimer(context.Background(), 50*time.Millisecond, 0, nil)
	<-st3.Done()
	if streamCause(st3) != errStreamIdle || st3.stop() != errStreamIdle {
		t.Errorf("cause %v, want the stream idle timeout", streamCause(st3))
	}
}

// TestH1ConnectionCancelsStream: an HTTP/1 connection's context ending
// (the proxy shutting down) ends the stream in flight, which unblocks its
// upstream exchange: the upstream connection is closed.
func TestH1ConnectionCancelsStream(t *testing.T) {
	backend, n, aborted := stallingBackendAborts(t, false, 1000, false)
	p := startTestProxy(t, backend, proxyOpts{routes: noRouteTimeout})
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nhost: a\r\n\r\n")
	for n.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	p.cancel()
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard against hanging
	if b, err := io.ReadAll(c); err != nil || (len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 503")) {
		t.Fatalf("got %q, %v: want the connection closed, or a 503", b, err)
	}
	for aborted.Load() == 0 { // the test's timeout bounds this
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStopWaitsForExpire: a timer that fires as its stream ends must not
// call expire after stop returned, because the codec then recycles the
// stream (HTTP/2) or starts the connection's next one (HTTP/1), and a late
// expire would cut that one. stop now waits for a fire in progress.
func TestStopWaitsForExpire(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var returned atomic.Bool
	st := newStream(context.Background(), time.Millisecond, 0, func(bool) {
		close(entered)
		<-release
		returned.Store(true)
	})
	st.arm(nil)
	<-entered // the idle timeout fired and expire is running
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(release)
	}()
	st.stop()
	if !returned.Load() {
		t.Fatal("stop returned while expire was still running")
	}
}
