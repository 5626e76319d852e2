package listener

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// Bounds of the work done before a connection reaches its filters.
const (
	// InspectTimeout is how long the proxy waits for a client's first
	// bytes when the chain depends on them; a silent client is plaintext.
	InspectTimeout = time.Second
	// HandshakeTimeout bounds a TLS handshake.
	HandshakeTimeout = 10 * time.Second
)

// TLSStats count downstream TLS handshakes.
type TLSStats struct {
	Handshakes, HandshakeErrors, NoChain atomic.Uint64
}

// selectChain picks nc's filter chain, inspecting its first bytes when the
// listener's chains depend on them, and terminates TLS when the chain has a
// TLS context. A nil chain means the connection must be closed.
//
// appProto is what the HTTP inspector found ("http/1.1", "h2c"; see
// inspect_http.go): the application protocol of a plaintext connection.
func (m *Manager) selectChain(nc net.Conn, cfg *xdsparse.Listener, port uint32, appProto string) (net.Conn, *xdsparse.FilterChain) {
	var info xdsparse.ConnInfo
	if cfg.NeedsInspection() {
		c, in, err := tlsconfig.Inspect(nc, InspectTimeout)
		if err != nil {
			return nc, nil
		}
		nc, info = c, in
	}
	if !info.TLS && appProto != "" {
		info.ALPN = []string{appProto}
	}
	if cfg.NeedsAddresses() {
		if a, err := netip.ParseAddrPort(nc.LocalAddr().String()); err == nil {
			info.Dst = a.Addr().Unmap()
		}
		if a, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
			info.Src = a.Addr().Unmap()
		}
	}
	chain := cfg.SelectChain(port, info)
	if chain == nil {
		m.TLSStats.NoChain.Add(1)
		m.log.Debug("no filter chain matches", "listener", cfg.Name, "port", port, "tls", info.TLS, "sni", info.SNI, "alpn", info.ALPN)
		return nc, nil
	}
	if chain.TLS == nil {
		return nc, chain
	}
	if m.TLS == nil {
		m.TLSStats.HandshakeErrors.Add(1)
		m.log.Warn("filter chain terminates TLS but the proxy has no TLS builder", "listener", cfg.Name, "chain", chain.Name)
		return nc, nil
	}
	tc, err := m.TLS.Server(chain.TLS)
	if err != nil {
		m.TLSStats.HandshakeErrors.Add(1)
		m.log.Warn("cannot terminate TLS", "listener", cfg.Name, "chain", chain.Name, "error", err)
		return nc, nil
	}
	conn := tls.Server(nc, tc)
	conn.SetDeadline(time.Now().Add(HandshakeTimeout))
	if err := conn.Handshake(); err != nil {
		m.TLSStats.HandshakeErrors.Add(1)
		if errors.Is(err, tlsconfig.ErrNoCertificate) {
			// Fail closed, loudly: mTLS is required here and there is nothing to present.
			m.log.Warn("connection refused: this chain requires mTLS (PeerAuthentication STRICT) and the proxy has no workload certificate",
				"listener", cfg.Name, "chain", chain.Name, "remote", nc.RemoteAddr().String(), "error", err)
			return nc, nil
		}
		m.log.Debug("TLS handshake refused", "listener", cfg.Name, "chain", chain.Name, "remote", nc.RemoteAddr().String(), "error", err)
		return nc, nil
	}
	conn.SetDeadline(time.Time{})
	m.TLSStats.Handshakes.Add(1)
	return conn, chain
}
