package tlsconfig_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
)

// clientHello returns the bytes a Go TLS client sends first.
func clientHello(t testing.TB, sni string, alpn ...string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, NextProtos: alpn, InsecureSkipVerify: true})
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Handshake()
		a.Close()
	}()
	var buf bytes.Buffer
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	chunk := make([]byte, 4096)
	n, _ := b.Read(chunk) // the ClientHello comes in one write
	buf.Write(chunk[:n])
	b.Close()
	return buf.Bytes()
}

func TestInspect(t *testing.T) {
	hello := clientHello(t, "outbound_.9080_._.reviews.default.svc.cluster.local", "istio-peer-exchange", "istio")
	cases := []struct {
		name    string
		send    []byte
		close   bool // close after sending
		wantTLS bool
		sni     string
		alpn    []string
	}{
		{"http/1.1", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, false, "", nil},
		{"h2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), false, false, "", nil},
		{"client hello", hello, false, true, "outbound_.9080_._.reviews.default.svc.cluster.local", []string{"istio-peer-exchange", "istio"}},
		{"silent client (server speaks first)", nil, false, false, "", nil},
		{"handshake byte then garbage", []byte{0x16, 0xff, 0xff, 0, 1, 2}, true, false, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			go func() {
				if len(tc.send) > 0 {
					a.Write(tc.send)
				}
				if tc.close {
					a.Close()
				}
			}()
			conn, info, err := tlsconfig.Inspect(b, 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if info.TLS != tc.wantTLS || info.SNI != tc.sni || !slices.Equal(info.ALPN, tc.alpn) {
				t.Fatalf("info %+v, want TLS %v SNI %q ALPN %q", info, tc.wantTLS, tc.sni, tc.alpn)
			}
			// Everything sent must be replayed, in order.
			got := make([]byte, len(tc.send))
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(conn, got); err != nil {
				t.Fatalf("replay: %v", err)
			}
			if !bytes.Equal(got, tc.send) {
				t.Fatalf("replayed %q, sent %q", got, tc.send)
			}
		})
	}
	t.Run("closed before any byte", func(t *testing.T) {
		a, b := net.Pipe()
		a.Close()
		if _, _, err := tlsconfig.Inspect(b, time.Second); err == nil {
			t.Fatal("no error for a connection closed at once")
		}
	})
}

// FuzzInspect: arbitrary first bytes never crash the inspector, and are
// always replayed unchanged.
func FuzzInspect(f *testing.F) {
	f.Add(clientHello(f, "reviews", "h2", "http/1.1"))
	f.Add(clientHello(f, ""))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		conn, _, err := tlsconfig.Inspect(&bytesConn{r: bytes.NewReader(data)}, time.Second)
		if err != nil {
			t.Fatalf("inspect: %v", err) // only an empty connection is an error
		}
		got, _ := io.ReadAll(conn)
		if !bytes.Equal(got, data) {
			t.Fatalf("replayed %d bytes %x, sent %x", len(got), got, data)
		}
	})
}

// bytesConn is a net.Conn reading data, then EOF.
type bytesConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *bytesConn) Read(p []byte) (int, error)      { return c.r.Read(p) }
func (c *bytesConn) SetReadDeadline(time.Time) error { return nil }

func BenchmarkInspectClientHello(b *testing.B) {
	hello := clientHello(b, "outbound_.9080_._.reviews.default.svc.cluster.local", "http/1.1", "istio-peer-exchange", "istio")
	b.ReportAllocs()
	for b.Loop() {
		a, c := net.Pipe()
		go func() { a.Write(hello); a.Close() }()
		conn, info, err := tlsconfig.Inspect(c, time.Second)
		if err != nil || !info.TLS {
			b.Fatal(err, info)
		}
		io.Copy(io.Discard, conn)
	}
}
