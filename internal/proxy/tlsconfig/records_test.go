package tlsconfig_test

import (
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
)

// writeCounter counts the writes made on a connection (each one a write
// system call on a socket).
type writeCounter struct {
	net.Conn
	n atomic.Int64
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// TestMessageLeavesInOneWrite: a sidecar's message (an HTTP/1.1 head and
// a body written as one buffer) leaves a fresh mTLS connection as one
// record in one write, either way. With crypto/tls's dynamic record sizing
// the first records of a connection carry at most about 1.2 KB, so a 3 KB
// message took three records and three writes.
func TestMessageLeavesInOneWrite(t *testing.T) {
	p := newPKI(t, "root")
	client, err := tlsconfig.NewBuilder(staticSource{p.secrets(t, clientID)}, nil).Client(istioMutual(true, serverID), tlsconfig.ALPNHTTP11)
	if err != nil {
		t.Fatal(err)
	}
	srvTC := istioMutual(false)
	srvTC.ALPN = []string{"http/1.1"}
	server, err := tlsconfig.NewBuilder(staticSource{p.secrets(t, serverID)}, nil).Server(srvTC)
	if err != nil {
		t.Fatal(err)
	}
	a, b := tcpPair(t)
	ca, cb := &writeCounter{Conn: a}, &writeCounter{Conn: b}
	cc, sc := tls.Client(ca, client), tls.Server(cb, server)
	defer cc.Close()
	defer sc.Close()
	msg := make([]byte, 3000)
	done := make(chan error, 1)
	go func() {
		if err := sc.Handshake(); err != nil {
			done <- err
			return
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(sc, got); err != nil {
			done <- err
			return
		}
		before := cb.n.Load()
		_, err := sc.Write(msg)
		if n := cb.n.Load() - before; err == nil && n != 1 {
			t.Errorf("server: a %d-byte message took %d writes, want 1", len(msg), n)
		}
		done <- err
	}()
	if err := cc.Handshake(); err != nil {
		t.Fatal(err)
	}
	before := ca.n.Load()
	if _, err := cc.Write(msg); err != nil {
		t.Fatal(err)
	}
	if n := ca.n.Load() - before; n != 1 {
		t.Errorf("client: a %d-byte message took %d writes, want 1", len(msg), n)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(cc, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// tcpPair returns both ends of a loopback TCP connection (net.Pipe has no
// buffer: TLS 1.3's session tickets, written after the handshake, would
// block the server while the client writes).
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	return a, b
}
