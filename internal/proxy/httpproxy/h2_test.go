package httpproxy

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/mast-mesh/mast/internal/proxy/h2client"
	"github.com/mast-mesh/mast/internal/proxy/h2server"
)

// TestH2ResponseSingletonHeaders: every HTTP/2 response carries
// content-type, date and content-length at most once, whatever the
// upstream protocol, for proxied, empty and local responses (curl refuses
// a response with two content-length fields).
// A downstream HTTP/2 body, timed or not, hands what arrived to the
// upstream HTTP/2 client with the request head.
var (
	_ h2client.ReadyReader = (*h2server.Stream)(nil)
	_ h2client.ReadyReader = (*timedBody)(nil)
	_ h2client.ReadyReader = (*countReader)(nil)
	_ h2client.BodyStopper = (*h2server.Stream)(nil)
	_ h2client.BodyStopper = (*timedBody)(nil)
	_ h2client.BodyStopper = (*countReader)(nil)
)

func TestH2ResponseSingletonHeaders(t *testing.T) {
	for _, h2up := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2 upstream %v", h2up), func(t *testing.T) {
			backend, _ := recordingBackend(t, h2up, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/empty":
					w.Header().Set("content-type", "application/json")
					w.WriteHeader(200)
				case "/nocontent":
					w.WriteHeader(204)
				default:
					w.Header().Set("content-type", "application/json")
					io.WriteString(w, `{"ok":true}`)
				}
			})
			p := startTestProxy(t, backend, proxyOpts{h2Upstream: h2up})
			c := dialH2(t, p.addr, nil)
			for i, path := range []string{"/json", "/empty", "/nocontent", "/nocluster"} {
				id := uint32(2*i + 1)
				c.request(id, "GET", path, nil, true)
				r := c.response(id)
				if r.status() == "" {
					t.Fatalf("%s: no :status: %v", path, r.fields)
				}
				for _, name := range []string{"content-type", "date", "content-length", "server"} {
					if n := r.count(name); n > 1 {
						t.Errorf("%s: %d %s fields: %v", path, n, name, r.fields)
					}
				}
				if path == "/nocontent" && r.count("content-length") != 0 {
					t.Errorf("204 with content-length: %v", r.fields)
				}
				if path == "/empty" && r.get("content-length") != "0" {
					t.Errorf("empty 200: content-length %q, want 0: %v", r.get("content-length"), r.fields)
				}
				if path == "/json" && (r.get("content-type") != "application/json" || r.body != `{"ok":true}`) {
					t.Errorf("json: %v %q", r.fields, r.body)
				}
			}
		})
	}
}

// TestH2NoSniffedContentType: a response without content-type goes out
// without one (Go's server would otherwise sniff and add one).
func TestH2NoSniffedContentType(t *testing.T) {
	backend, _ := recordingBackend(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html>hi</html>")
	})
	p := startTestProxy(t, backend, proxyOpts{})
	c := dialH2(t, p.addr, nil)
	c.request(1, "GET", "/", nil, true)
	if r := c.response(1); r.count("content-type") != 0 {
		t.Fatalf("content-type added: %v", r.fields)
	}
}

// TestH2RequestValidation: pseudo-headers and field values that would
// change the meaning of the translated HTTP/1 request are refused before
// anything reaches the upstream (RFC 9113 section 8.2.1).
func TestH2RequestValidation(t *testing.T) {
	backend, seen := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, proxyOpts{})
	c := dialH2(t, p.addr, nil)
	cases := []struct {
		name   string
		method string
		path   string
		fields [][2]string
	}{
		{"space in path (request-line injection)", "GET", "/public/x HTTP/1.1", nil},
		{"tab in path", "GET", "/a\tb", nil},
		{"non-ASCII path", "GET", "/caf\xc3\xa9", nil},
		{"fragment in path", "GET", "/a#b", nil},
		{"space in method", "GET /admin HTTP/1.1\r\nx:", "/", nil},
		{"leading space in value", "GET", "/", [][2]string{{"x-a", " v"}}},
		{"trailing tab in value", "GET", "/", [][2]string{{"x-a", "v\t"}}},
	}
	id := uint32(1)
	for _, tc := range cases {
		c.request(id, tc.method, tc.path, tc.fields, true)
		r := c.response(id)
		if !r.wasReset && r.status() != "400" {
			t.Errorf("%s: status %q, want 400 or a reset", tc.name, r.status())
		}
		id += 2
	}
	select {
	case s := <-seen:
		t.Fatalf("a malformed request reached the upstream: %s %q", s.method, s.uri)
	default:
	}
	// A valid request on the same connection still works.
	c.request(id, "GET", "/ok?q=%20", [][2]string{{"x-a", "v w"}}, true)
	if r := c.response(id); r.status() != "200" {
		t.Fatalf("valid request: %v", r.fields)
	}
	if s := <-seen; s.uri != "/ok?q=%20" || s.header.Get("x-a") != "v w" {
		t.Fatalf("upstream got %q %v", s.uri, s.header)
	}
}

// TestH2UpstreamForwardedAsCame: the proxy adds no accept-encoding or
// user-agent of its own toward an HTTP/2 upstream, and forwards a GET body
// sent without content-length, over either upstream protocol.
func TestH2UpstreamForwardedAsCame(t *testing.T) {
	for _, h2up := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2 upstream %v", h2up), func(t *testing.T) {
			backend, seen := recordingBackend(t, h2up, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("content-encoding", "gzip")
				w.Write([]byte{0x1f, 0x8b}) // not decompressed on the way
			})
			p := startTestProxy(t, backend, proxyOpts{h2Upstream: h2up})
			c := dialH2(t, p.addr, nil)
			c.request(1, "GET", "/search", nil, false)
			c.fr.WriteData(1, true, []byte(`{"q":"x"}`))
			r := c.response(1)
			s := <-seen
			if r.status() != "200" || r.body != "\x1f\x8b" || r.get("content-encoding") != "gzip" {
				t.Errorf("response %v %q", r.fields, r.body)
			}
			if s.body != `{"q":"x"}` {
				t.Errorf("GET body %q did not reach the upstream", s.body)
			}
			if v, ok := s.header["Accept-Encoding"]; ok {
				t.Errorf("accept-encoding added: %q", v)
			}
			if v, ok := s.header["User-Agent"]; ok {
				t.Errorf("user-agent added: %q", v)
			}
			if h2up && s.proto != "HTTP/2.0" || !h2up && s.proto != "HTTP/1.1" {
				t.Errorf("upstream protocol %s", s.proto)
			}
		})
	}
}

// TestALPNDecidesProtocol: over TLS, h2 means HTTP/2 only (a bad preface
// gets SETTINGS and a GOAWAY with PROTOCOL_ERROR) and http/1.1 means
// HTTP/1.1 only (the HTTP/2 preface is a bad HTTP/1 request).
func TestALPNDecidesProtocol(t *testing.T) {
	cert := selfSigned(t)
	backend, _ := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, proxyOpts{tls: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}})
	dial := func(proto string) *tls.Conn {
		c, err := tls.Dial("tcp", p.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if c.ConnectionState().NegotiatedProtocol != proto {
			t.Fatalf("negotiated %q, want %q", c.ConnectionState().NegotiatedProtocol, proto)
		}
		return c
	}

	t.Run("h2 with a bad preface", func(t *testing.T) {
		c := dial("h2")
		io.WriteString(c, "GET / HTTP/1.1\r\nhost: a\r\n\r\n")
		fr := http2.NewFramer(nil, c)
		var gotSettings bool
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("no GOAWAY before the connection ended: %v", err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				gotSettings = true
			case *http2.GoAwayFrame:
				if !gotSettings || f.ErrCode != http2.ErrCodeProtocol {
					t.Fatalf("GOAWAY %v after settings=%v", f.ErrCode, gotSettings)
				}
				return
			}
		}
	})
	t.Run("h2 works", func(t *testing.T) {
		c := dialH2(t, p.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		c.request(1, "GET", "/", nil, true)
		if r := c.response(1); r.status() != "200" {
			t.Fatalf("%v", r.fields)
		}
	})
	t.Run("http/1.1 refuses the HTTP/2 preface", func(t *testing.T) {
		c := dial("http/1.1")
		io.WriteString(c, http2.ClientPreface)
		line, _ := bufio.NewReader(c).ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 4") && !strings.HasPrefix(line, "HTTP/1.1 505") {
			t.Fatalf("answer %q, want an HTTP/1.1 error", line)
		}
	})
	t.Run("http/1.1 works", func(t *testing.T) {
		c := dial("http/1.1")
		io.WriteString(c, "GET / HTTP/1.1\r\nhost: a\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
	})
}

// TestH2BufferLimit: per_connection_buffer_limit_bytes bounds the receive
// windows the proxy advertises, per stream and per connection.
func TestH2BufferLimit(t *testing.T) {
	backend, _ := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, proxyOpts{})
	c := dialH2(t, p.addr, nil)
	c.request(1, "GET", "/", nil, true)
	c.response(1)
	if w := c.settings[http2.SettingInitialWindowSize]; w != 1<<20 {
		t.Errorf("initial stream window %d, want 1 MiB", w)
	}
	if c.connWindow+65535 != 1<<20 {
		t.Errorf("connection window %d, want 1 MiB", c.connWindow+65535)
	}
}

// selfSigned returns a throwaway server certificate.
func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestH2FloodsCutTheConnection: rapid reset and control-frame floods end
// the flooding connection (Go's server bounds neither), while a client
// that resets some streams and pings now and then is served, and so is
// one that pings after every response it reads (grpc-go's BDP estimator).
func TestH2FloodsCutTheConnection(t *testing.T) {
	backend, _ := recordingBackend(t, false, nil)
	p := startTestProxy(t, backend, proxyOpts{})
	closed := func(c *h2Client) bool {
		for {
			if _, err := c.fr.ReadFrame(); err != nil {
				return true
			}
		}
	}
	for _, tc := range []struct {
		name  string
		flood func(c *h2Client)
	}{
		{"ping", func(c *h2Client) {
			for i := 0; i < 2*controlBurst; i++ {
				if c.fr.WritePing(false, [8]byte{byte(i)}) != nil {
					return
				}
			}
		}},
		{"rapid reset", func(c *h2Client) {
			for id := uint32(1); id < 2*(prematureResetMinStreams+50); id += 2 {
				c.request(id, "GET", "/", nil, true)
				if c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
					return
				}
			}
		}},
		{"settings", func(c *h2Client) {
			for i := 0; i < 2*controlBurst; i++ {
				if c.fr.WriteSettings() != nil {
					return
				}
			}
		}},
		{"empty data", func(c *h2Client) {
			c.request(1, "POST", "/", nil, false)
			for i := 0; i < 2*controlBurst; i++ {
				if c.fr.WriteData(1, false, nil) != nil {
					return
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := p.srv.Stats.CxFlood.Load()
			c := dialH2(t, p.addr, nil)
			go tc.flood(c)
			if !closed(c) {
				t.Fatal("connection survived the flood")
			}
			if p.srv.Stats.CxFlood.Load() != before+1 {
				t.Fatalf("CxFlood %d, want %d", p.srv.Stats.CxFlood.Load(), before+1)
			}
		})
	}
	t.Run("a normal client is served", func(t *testing.T) {
		before := p.srv.Stats.CxFlood.Load()
		c := dialH2(t, p.addr, nil)
		for id := uint32(1); id < 2*prematureResetMinStreams; id += 2 {
			c.request(id, "GET", "/", nil, true)
			if id%4 == 1 { // a quarter of the streams cancelled
				c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
			} else {
				c.response(id)
			}
			if id%50 == 1 {
				c.fr.WritePing(false, [8]byte{1})
			}
		}
		c.request(2*prematureResetMinStreams+1, "GET", "/", nil, true)
		if r := c.response(2*prematureResetMinStreams + 1); r.status() != "200" {
			t.Fatalf("%v", r.fields)
		}
		if p.srv.Stats.CxFlood.Load() != before {
			t.Fatal("a normal client was cut")
		}
	})
	t.Run("a client that pings after every response is served", func(t *testing.T) {
		before := p.srv.Stats.CxFlood.Load()
		c := dialH2(t, p.addr, nil)
		for i := 0; i < 2*controlBurst; i++ {
			id := uint32(2*i + 1)
			c.request(id, "GET", "/", nil, true)
			if r := c.response(id); r.status() != "200" {
				t.Fatalf("request %d: %v", i, r.fields)
			}
			data := [8]byte{byte(i), byte(i >> 8)}
			if err := c.fr.WritePing(false, data); err != nil {
				t.Fatalf("PING %d: %v", i, err)
			}
			for acked := false; !acked; {
				f, err := c.fr.ReadFrame()
				if err != nil {
					t.Fatalf("the ACK of PING %d: %v", i, err)
				}
				pf, ok := f.(*http2.PingFrame)
				acked = ok && pf.IsAck() && pf.Data == data
			}
		}
		if p.srv.Stats.CxFlood.Load() != before {
			t.Fatal("a client that pings was cut")
		}
	})
}

// TestH2EarlyAnswerWhileBodyStreams: an HTTP/2 upstream answers a request
// whose body is still streaming (it never reads it, as a gRPC server may
// answer before the client's END_STREAM). The proxy's stream is recycled
// for the next request only after the upstream body writer let go of it:
// before, the writer still waited in the recycled stream's Read (a nil
// pointer panic in production, a data race here), or read the next
// request's body.
func TestH2EarlyAnswerWhileBodyStreams(t *testing.T) {
	h := h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early")
	}), &http2.Server{})
	backend := httptest.NewServer(h)
	t.Cleanup(backend.Close)
	p := startTestProxy(t, strings.TrimPrefix(backend.URL, "http://"), proxyOpts{h2Upstream: true})
	c := dialH2(t, p.addr, nil)
	for i := range 30 {
		id := uint32(2*i + 1)
		// No content-length: the body streams to the upstream.
		c.request(id, "POST", "/", [][2]string{{"content-type", "application/grpc"}}, false)
		if i%2 == 1 {
			c.fr.WriteData(id, false, []byte("first"))
		}
		r := c.response(id)
		if r.status() != "200" || r.body != "early" {
			t.Fatalf("stream %d: %v %q reset %v", id, r.fields, r.body, r.reset)
		}
		// The rest of the body comes after the answer.
		c.fr.WriteData(id, true, []byte("late"))
	}
	c.request(61, "GET", "/", nil, true)
	if r := c.response(61); r.status() != "200" {
		t.Fatalf("last: %v", r.fields)
	}
}
