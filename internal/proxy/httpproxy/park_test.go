package httpproxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/durationpb"
)

// waitParked waits until n connections are parked (a hang guard, not a
// timed assertion: parking takes no time once the connections are idle).
func waitParked(t *testing.T, p *testProxy, n int) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); p.srv.Parked() < n; {
		if time.Now().After(end) {
			t.Fatalf("%d of %d connections parked", p.srv.Parked(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// h1Get sends one HTTP/1.1 request on c and checks the answer.
func h1Get(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nhost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	h1Read(t, br)
}

func h1Read(t *testing.T, br *bufio.Reader) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// TestIdleConnectionsHoldNoGoroutine: idle HTTP/1.1 keep-alive and HTTP/2
// connections are parked with the idle poller: they hold no goroutine,
// and each serves its next request.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	backend, _ := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, proxyOpts{})
	const n = 40
	// One connection of each kind first, so that one-off goroutines (the
	// upstream connection, the poller's) are not counted per connection.
	warm, _ := net.Dial("tcp", p.addr)
	defer warm.Close()
	h1Get(t, warm, bufio.NewReader(warm))
	dialH2(t, p.addr, nil).request(1, "GET", "/", nil, true)
	waitParked(t, p, 2)
	runtime.GC()
	g0 := runtime.NumGoroutine()

	h1 := make([]net.Conn, n)
	h1r := make([]*bufio.Reader, n)
	h2 := make([]*h2Client, n)
	for i := range n {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		h1[i], h1r[i] = c, bufio.NewReader(c)
		h1Get(t, c, h1r[i])
		h2[i] = dialH2(t, p.addr, nil)
		h2[i].request(1, "GET", "/", nil, true)
		if r := h2[i].response(1); r.status() != "200" {
			t.Fatal(r.fields)
		}
	}
	waitParked(t, p, 2*n+2)
	// The test's own goroutines: none per connection (its clients are
	// plain sockets). Let the exiting connection goroutines finish.
	var g1 int
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		if g1 = runtime.NumGoroutine(); g1-g0 < n/2 || time.Now().After(end) {
			break
		}
	}
	if g1-g0 >= n/2 {
		t.Fatalf("%d idle connections hold %d goroutines (%d -> %d); want none each", 2*n, g1-g0, g0, g1)
	}
	for i := range n {
		h1Get(t, h1[i], h1r[i])
		h2[i].request(3, "GET", "/", nil, true)
		if r := h2[i].response(3); r.status() != "200" {
			t.Fatalf("parked HTTP/2 connection %d: %v", i, r.fields)
		}
	}
}

// TestParkingSkipsWithoutPoller: ServeConn (attached) never parks, so the
// goroutine check above could fail.
func TestParkingNeedsDetached(t *testing.T) {
	backend, _ := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, proxyOpts{parkIdle: -1})
	c, _ := net.Dial("tcp", p.addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	h1Get(t, c, br)
	h1Get(t, c, br)
	if n := p.srv.Parked(); n != 0 {
		t.Fatalf("%d parked with ParkIdle < 0", n)
	}
}

// flushConn gathers writes until flush, so that several TLS records (or
// pipelined requests) reach the proxy in one segment.
type flushConn struct {
	net.Conn
	hold bool
	buf  bytes.Buffer
}

func (c *flushConn) Write(p []byte) (int, error) {
	if !c.hold {
		return c.Conn.Write(p)
	}
	return c.buf.Write(p)
}

func (c *flushConn) flush() error {
	_, err := c.Conn.Write(c.buf.Bytes())
	c.buf.Reset()
	return err
}

// TestParkingNeverStrandsBufferedBytes: pipelined requests, whether in the
// proxy's read buffer (plaintext) or still as whole records in the TLS
// layer's buffer, are served; the connection does not park on them.
func TestParkingNeverStrandsBufferedBytes(t *testing.T) {
	cert := selfSigned(t)
	backend, _ := recordingBackend(t, false, nil)
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plaintext", false}, {"TLS", true}} {
		t.Run(tc.name, func(t *testing.T) {
			o := proxyOpts{}
			if tc.tls {
				o.tls = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
			}
			p := startTestProxy(t, backend, o)
			raw, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(30 * time.Second))
			fc := &flushConn{Conn: raw}
			var c net.Conn = fc
			if tc.tls {
				tc := tls.Client(fc, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				c = tc
			}
			br := bufio.NewReader(c)
			fc.hold = true
			// Three requests, each its own TLS record, in one segment.
			for range 3 {
				io.WriteString(c, "GET / HTTP/1.1\r\nhost: a\r\n\r\n")
			}
			if err := fc.flush(); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				h1Read(t, br)
			}
		})
	}
}

// TestParkedConnectionsClose: idle timeout, draining and the end of the
// connection's context close parked connections as they close idle ones.
func TestParkedConnectionsClose(t *testing.T) {
	backend, _ := recordingBackend(t, false, nil)
	cases := []struct {
		name string
		o    proxyOpts
		end  func(p *testProxy)
	}{
		{"idle timeout", withHCM(func(h *hcmv3.HttpConnectionManager) {
			h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(300 * time.Millisecond)}
		}), func(*testProxy) {}},
		{"drain", proxyOpts{}, func(p *testProxy) { p.srv.Drain() }},
		{"context", proxyOpts{}, func(p *testProxy) { p.cancel() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startTestProxy(t, backend, tc.o)
			c1, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			c1.SetDeadline(time.Now().Add(30 * time.Second))
			h1Get(t, c1, bufio.NewReader(c1))
			c2 := dialH2(t, p.addr, nil)
			c2.request(1, "GET", "/", nil, true)
			if r := c2.response(1); r.status() != "200" {
				t.Fatal(r.fields)
			}
			waitParked(t, p, 2)
			tc.end(p)
			if n, err := c1.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("parked HTTP/1.1 connection: read %d, %v; want EOF", n, err)
			}
			goAway := false
			for {
				f, err := c2.fr.ReadFrame()
				if err != nil {
					if !goAway && tc.name != "context" {
						t.Fatalf("parked HTTP/2 connection ended without GOAWAY: %v", err)
					}
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("parked HTTP/2 connection still open: %v", err)
					}
					break
				}
				if _, ok := f.(*http2.GoAwayFrame); ok {
					goAway = true
				}
			}
		})
	}
}
