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
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestKeptAliveHeadTimeout: request_headers_timeout bounds the head of
// every request of a keep-alive connection, not only the first one (the
// connection's timer, h1timer.go), whether the connection waited for it
// on its goroutine or parked.
func TestKeptAliveHeadTimeout(t *testing.T) {
	backend, _ := recordingBackend(t, false, nil)
	for _, park := range []time.Duration{-1, 0} {
		t.Run(map[bool]string{true: "parked", false: "not parked"}[park >= 0], func(t *testing.T) {
			o := withHCM(func(h *hcmv3.HttpConnectionManager) {
				h.RequestHeadersTimeout = durationpb.New(200 * time.Millisecond)
			})
			o.parkIdle = park
			p := startTestProxy(t, backend, o)
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second)) // a guard, not an assertion
			br := bufio.NewReader(c)
			h1Get(t, c, br)
			io.WriteString(c, "GET / HTTP/1.1\r\nhost: a\r\n") // the head never ends
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer to the unfinished head: %v", err)
			}
			if resp.StatusCode != 408 {
				t.Fatalf("status %d, want 408", resp.StatusCode)
			}
		})
	}
}

// TestSlowRequestOutlivesConnectionLimits: once a request's head arrived,
// only the stream's timers bound it: a body that takes longer than
// request_headers_timeout, the idle timeout and ParkIdle together still
// gets its answer, and the connection serves the next request.
func TestSlowRequestOutlivesConnectionLimits(t *testing.T) {
	backend, seen := recordingBackend(t, false, nil)
	o := withHCM(func(h *hcmv3.HttpConnectionManager) {
		h.RequestHeadersTimeout = durationpb.New(50 * time.Millisecond)
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(100 * time.Millisecond)}
	})
	o.parkIdle = 20 * time.Millisecond
	p := startTestProxy(t, backend, o)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	h1Get(t, c, br)
	<-seen
	body := strings.Repeat("x", 8)
	io.WriteString(c, "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 8\r\n\r\n")
	for i := range body {
		time.Sleep(40 * time.Millisecond) // 320 ms in all
		io.WriteString(c, body[i:i+1])
	}
	h1Read(t, br)
	if r := <-seen; r.body != body {
		t.Fatalf("backend got body %q, want %q", r.body, body)
	}
	h1Get(t, c, br)
}

// TestIdleTimeoutFromTelemetryEnd: with telemetry on, the wait for a
// connection's next request starts at the telemetry's end-of-request
// clock reading (serveOne hands it to serve instead of reading the clock
// again): the next request is served, and the idle timeout then closes
// the connection.
func TestIdleTimeoutFromTelemetryEnd(t *testing.T) {
	backend, seen := recordingBackend(t, false, nil)
	o := withHCM(func(h *hcmv3.HttpConnectionManager) {
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(200 * time.Millisecond)}
	})
	o.telemetry = true
	for _, park := range []time.Duration{0, time.Hour} {
		o.parkIdle = park
		p := startTestProxy(t, backend, o)
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		for range 2 {
			h1Get(t, c, br)
			<-seen
		}
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("ParkIdle %v: read on the idle connection = %d, %v; want io.EOF (the idle timeout closed it)", park, n, err)
		}
		c.Close()
	}
}
