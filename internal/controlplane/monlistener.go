package controlplane

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// sniffTimeout bounds how long a new monitoring connection may take to send
// its first byte before it is dropped.
const sniffTimeout = 10 * time.Second

// tlsSniffListener serves plaintext HTTP (Prometheus, curl) and HTTPS on one
// port: a connection whose first byte is a TLS handshake record (0x16) is
// terminated with tlsCfg, so that a client can authenticate with a
// certificate (admin identities); anything else is handed on as it came.
// The first byte is read in a goroutine per connection, never in Accept,
// so a silent client holds up nobody.
type tlsSniffListener struct {
	inner  net.Listener
	tlsCfg *tls.Config
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	err    error // set before done is closed
}

func newTLSSniffListener(inner net.Listener, tlsCfg *tls.Config) *tlsSniffListener {
	l := &tlsSniffListener{inner: inner, tlsCfg: tlsCfg, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *tlsSniffListener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			l.shutdown(err)
			return
		}
		go l.sniff(c)
	}
}

func (l *tlsSniffListener) sniff(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	var out net.Conn = &peekedConn{Conn: c, r: br}
	if first[0] == 0x16 { // TLS record type handshake
		out = tls.Server(out, l.tlsCfg)
	}
	select {
	case l.conns <- out:
	case <-l.done:
		c.Close()
	}
}

func (l *tlsSniffListener) shutdown(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
	})
}

// Accept returns the next sniffed connection.
func (l *tlsSniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close closes the inner listener; pending connections are dropped.
func (l *tlsSniffListener) Close() error {
	err := l.inner.Close()
	l.shutdown(net.ErrClosed)
	return err
}

func (l *tlsSniffListener) Addr() net.Addr { return l.inner.Addr() }

// peekedConn reads through the buffer that holds the sniffed byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
