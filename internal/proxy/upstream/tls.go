package upstream

import (
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// poolConfigWithTLS is the pool configuration of cluster c's hosts whose
// transport socket is tc (nil: plaintext).
func poolConfigWithTLS(c *xdsparse.Cluster, tc *xdsparse.TLSContext) poolConfig {
	pc := poolConfigFor(c)
	if tc != nil {
		pc.tlsKey = tc.Key
	}
	return pc
}

// secure runs the TLS handshake of the pool's transport socket over nc,
// within the connect timeout, offering proto first in ALPN.
func (p *pool) secure(nc net.Conn, proto string) (net.Conn, error) {
	if p.tlsb == nil {
		nc.Close()
		return nil, errors.New("TLS transport socket, but the proxy has no TLS support configured")
	}
	cfg, err := p.tlsb.Client(p.tls, proto)
	if err != nil {
		nc.Close()
		return nil, err
	}
	tc := tls.Client(nc, cfg)
	tc.SetDeadline(time.Now().Add(p.cfg.connectTimeout))
	if err := tc.Handshake(); err != nil {
		nc.Close()
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// DialStream opens a connection to h for tcp_proxy: TLS (without an HTTP
// ALPN protocol) when h's transport socket says so. Stats count it.
func (h *Host) DialStream() (net.Conn, error) {
	return h.connPool().connect("")
}

// DialStreamFor is DialStream for a downstream connection from src to dst:
// a cluster sending the PROXY protocol names these addresses, as Envoy's
// tcp_proxy passes the downstream connection's addresses down.
func (h *Host) DialStreamFor(src, dst net.Addr) (net.Conn, error) {
	return h.connPool().connectFor("", src, dst)
}

// DialHTTP2 opens a connection to h for an HTTP/2 client of the proxy's
// own (a filter's gRPC service): TLS with ALPN h2 when h's transport
// socket says so. Stats count it.
func (h *Host) DialHTTP2() (net.Conn, error) {
	return h.connPool().connect("h2")
}

// TLS returns the transport socket's TLS context of h, nil for plaintext.
func (h *Host) TLS() *xdsparse.TLSContext { return h.tls }
