package listener

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/rawsock"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// Application protocols the HTTP inspector reports (Envoy's names).
const (
	ProtoHTTP10 = "http/1.0"
	ProtoHTTP11 = "http/1.1"
	ProtoH2C    = "h2c"
)

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// classifyHTTP decides from the first bytes b of a connection whether it
// speaks HTTP, as Envoy's http_inspector does: the HTTP/2 connection preface
// is "h2c"; a well-formed HTTP/1 request line (method token, target,
// HTTP/1.0 or HTTP/1.1, line end) is "http/1.0" or "http/1.1". done is
// false while b is a prefix of something that could still be either; once
// done, proto "" means not HTTP.
func classifyHTTP(b []byte) (proto string, done bool) {
	if len(b) == 0 {
		return "", false
	}
	if n := min(len(b), len(h2Preface)); string(b[:n]) == h2Preface[:n] {
		if len(b) >= len(h2Preface) {
			return ProtoH2C, true
		}
		// "PRI" is also a method name; the preface decides on its own.
		return "", false
	}
	i := 0
	for ; i < len(b) && isTokenChar(b[i]); i++ {
	}
	if i == len(b) {
		return "", false
	}
	if i == 0 || b[i] != ' ' {
		return "", true
	}
	i++
	start := i
	for ; i < len(b) && b[i] > ' ' && b[i] != 0x7f; i++ {
	}
	if i == len(b) {
		return "", false
	}
	if i == start || b[i] != ' ' {
		return "", true
	}
	rest := b[i+1:]
	for _, v := range [...]struct{ version, proto string }{{"HTTP/1.1", ProtoHTTP11}, {"HTTP/1.0", ProtoHTTP10}} {
		want := v.version + "\r\n"
		n := min(len(rest), len(want))
		if string(rest[:n]) != want[:n] {
			// A bare LF ends the line too.
			if len(rest) > len(v.version) && string(rest[:len(v.version)]) == v.version && rest[len(v.version)] == '\n' {
				return v.proto, true
			}
			continue
		}
		if n == len(want) {
			return v.proto, true
		}
		return "", false
	}
	return "", true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// peekedConn replays the bytes an inspector read before the connection
// reached its filter chain.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() == 0 {
		return c.Conn.Read(p)
	}
	return c.r.Read(p)
}

// SyscallConn returns the socket once the peeked bytes were read (an idle
// connection may then be parked on it), an error before.
func (c *peekedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok || c.r.Buffered() > 0 {
		return nil, errUnread
	}
	return sc.SyscallConn()
}

// errUnread: a wrapped connection still holds bytes read from its socket.
var errUnread = errors.New("connection has unread peeked bytes")

// WriteVec passes a vectored write on (rawsock.WriteVec): the peeked
// bytes are only read.
func (c *peekedConn) WriteVec(a, b []byte) (int, error) { return rawsock.WriteVec(c.Conn, a, b) }

// CloseWrite half-closes the underlying connection.
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// OriginalDst passes the original destination of a redirected connection on.
func (c *peekedConn) OriginalDst() netip.AddrPort {
	if o, ok := c.Conn.(interface{ OriginalDst() netip.AddrPort }); ok {
		return o.OriginalDst()
	}
	return netip.AddrPort{}
}

// errInspectTimeout: the first bytes did not arrive in time.
var errInspectTimeout = errors.New("listener filters timed out")

// inspectHTTP peeks at nc's first bytes until classifyHTTP decides or
// timeout (0: none) passes. It returns a connection that replays what it
// read, and the application protocol ("" when not HTTP, or when the client
// sent too little in time: errInspectTimeout then).
func inspectHTTP(nc net.Conn, timeout time.Duration) (net.Conn, string, error) {
	br := bufio.NewReaderSize(nc, 8192)
	if timeout > 0 {
		nc.SetReadDeadline(time.Now().Add(timeout))
		defer nc.SetReadDeadline(time.Time{})
	}
	out := &peekedConn{Conn: nc, r: br}
	for {
		// Wait for one byte more than what is there (Peek returns as soon
		// as it arrived), then judge everything read so far.
		_, err := br.Peek(br.Buffered() + 1)
		b, _ := br.Peek(br.Buffered())
		if proto, done := classifyHTTP(b); done {
			return out, proto, nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return out, "", errInspectTimeout
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				// A request line longer than the buffer that still looks
				// like one: a long target, HTTP.
				return out, ProtoHTTP11, nil
			}
			return out, "", err
		}
	}
}

// inspectApp runs the HTTP inspector when the listener has one and its
// chains depend on the application protocol. ok is false when the
// connection must be closed (listener filters timed out without
// continue_on_listener_filters_timeout, or the client went away).
func (m *Manager) inspectApp(nc net.Conn, cfg *xdsparse.Listener) (_ net.Conn, proto string, ok bool) {
	if !cfg.Filters.HTTPInspector || !cfg.NeedsInspection() {
		return nc, "", true
	}
	nc, proto, err := inspectHTTP(nc, cfg.Filters.Timeout)
	switch {
	case errors.Is(err, errInspectTimeout):
		m.InspectTimeouts.Add(1)
		return nc, "", cfg.Filters.ContinueOnTimeout
	case err != nil:
		return nc, "", false
	}
	return nc, proto, true
}
