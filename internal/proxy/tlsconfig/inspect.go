package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/rawsock"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// recordTypeHandshake is the first byte of a TLS handshake record.
const recordTypeHandshake = 0x16

// maxHello bounds the bytes read while parsing a ClientHello.
const maxHello = 64 << 10

// Inspect peeks at the start of nc to tell a TLS ClientHello from plaintext,
// and for TLS reads SNI and ALPN, as Envoy's tls_inspector does. It returns
// a connection that replays what was read. A client that sends nothing for
// timeout is treated as plaintext (a server-speaks-first protocol).
func Inspect(nc net.Conn, timeout time.Duration) (net.Conn, xdsparse.ConnInfo, error) {
	var info xdsparse.ConnInfo
	nc.SetReadDeadline(time.Now().Add(timeout))
	defer nc.SetReadDeadline(time.Time{})
	var first [1]byte
	n, err := nc.Read(first[:])
	if n == 0 {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nc, info, nil
		}
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, info, err
	}
	if first[0] != recordTypeHandshake {
		return &prefixConn{Conn: nc, prefix: first[:1:1]}, info, nil
	}
	rec := &recorder{r: io.MultiReader(bytes.NewReader(first[:]), nc), limit: maxHello}
	var hello *tls.ClientHelloInfo
	errStop := errors.New("stop after ClientHello")
	srv := tls.Server(rec, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		hello = h
		return nil, errStop
	}})
	srv.Handshake()
	replay := &prefixConn{Conn: nc, prefix: rec.buf.Bytes()}
	if hello == nil {
		// Not a parsable ClientHello: hand the bytes on as they are; a TLS
		// chain's handshake or the plaintext filters will refuse them.
		return replay, info, nil
	}
	info.TLS = true
	info.SNI = hello.ServerName
	info.ALPN = append([]string(nil), hello.SupportedProtos...)
	return replay, info, nil
}

// recorder is a read-only net.Conn for crypto/tls that keeps what it read.
type recorder struct {
	r     io.Reader
	buf   bytes.Buffer
	limit int
}

func (r *recorder) Read(p []byte) (int, error) {
	if r.buf.Len() >= r.limit {
		return 0, errors.New("ClientHello too large")
	}
	p = p[:min(len(p), r.limit-r.buf.Len())]
	n, err := r.r.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

func (r *recorder) Write(p []byte) (int, error)      { return len(p), nil } // alerts go nowhere
func (r *recorder) Close() error                     { return nil }
func (r *recorder) LocalAddr() net.Addr              { return nil }
func (r *recorder) RemoteAddr() net.Addr             { return nil }
func (r *recorder) SetDeadline(time.Time) error      { return nil }
func (r *recorder) SetReadDeadline(time.Time) error  { return nil }
func (r *recorder) SetWriteDeadline(time.Time) error { return nil }

// prefixConn replays prefix before reading from Conn.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// WriteVec passes a vectored write on (rawsock.WriteVec): the prefix is
// only read.
func (c *prefixConn) WriteVec(a, b []byte) (int, error) { return rawsock.WriteVec(c.Conn, a, b) }

// CloseWrite half-closes the underlying TCP connection when it can.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// SyscallConn returns the socket once the prefix was read (an idle
// connection may then be parked on it), an error before.
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok || len(c.prefix) > 0 {
		return nil, errors.New("connection has an unread prefix")
	}
	return sc.SyscallConn()
}

// Unwrap returns the underlying connection.
func (c *prefixConn) Unwrap() net.Conn { return c.Conn }
