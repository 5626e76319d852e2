package listener

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/mast-mesh/mast/internal/proxy/capture"
	"github.com/mast-mesh/mast/internal/proxy/rawsock"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// redirectedConn is a connection that iptables redirected to the proxy: its
// local address is the original destination (as Envoy's original_dst
// listener filter restores it), so ORIGINAL_DST clusters and filter chain
// matching see where the client meant to go.
type redirectedConn struct {
	*rawsock.Conn
	orig netip.AddrPort
}

func (c *redirectedConn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.orig) }

// OriginalDst returns the destination before the redirect.
func (c *redirectedConn) OriginalDst() netip.AddrPort { return c.orig }

// virtualListeners indexes the listeners that do not bind (bind_to_port
// false) by address, for use_original_dst hand-off.
type virtualListeners map[string]*xdsparse.Listener

func newVirtualListeners(ls map[string]*xdsparse.Listener) virtualListeners {
	v := virtualListeners{}
	for _, l := range ls {
		if !l.BindToPort {
			v[l.Address] = l
		}
	}
	return v
}

// lookup finds the listener for dst as Envoy does: the exact address, else
// the wildcard address of the same port.
func (v virtualListeners) lookup(dst netip.AddrPort) *xdsparse.Listener {
	port := strconv.Itoa(int(dst.Port()))
	if l := v[net.JoinHostPort(dst.Addr().Unmap().String(), port)]; l != nil {
		return l
	}
	if l := v[net.JoinHostPort("0.0.0.0", port)]; l != nil && dst.Addr().Unmap().Is4() {
		return l
	}
	return v[net.JoinHostPort("::", port)]
}

// originalDst applies the original_dst listener filter and use_original_dst:
// for a connection that was redirected, it returns the connection with its
// original destination as local address, the listener to serve it (the one
// bound to the original destination when cfg hands off, else cfg) and the
// destination port for chain matching. Connections that were not
// redirected, and listeners without the filter, pass unchanged.
func (m *Manager) originalDst(nc net.Conn, cfg *xdsparse.Listener, port uint32) (net.Conn, *xdsparse.Listener, uint32) {
	if !cfg.Filters.OriginalDst && !cfg.UseOriginalDst {
		return nc, cfg, port
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc, cfg, port
	}
	orig, err := capture.OriginalDst(tc)
	if err != nil {
		m.log.Debug("no original destination", "listener", cfg.Name, "error", err)
		return nc, cfg, port
	}
	local, _ := netip.ParseAddrPort(tc.LocalAddr().String())
	orig = netip.AddrPortFrom(orig.Addr().Unmap(), orig.Port())
	if orig == netip.AddrPortFrom(local.Addr().Unmap(), local.Port()) {
		return nc, cfg, port // not redirected
	}
	raw, err := rawsock.New(tc)
	if err != nil {
		return nc, cfg, port
	}
	rc := &redirectedConn{Conn: raw, orig: orig}
	if cfg.UseOriginalDst {
		if v := m.virtual.Load(); v != nil {
			if l := (*v).lookup(orig); l != nil {
				m.log.Debug("original destination hand-off", "from", cfg.Name, "to", l.Name, "dst", orig.String())
				return rc, l, uint32(orig.Port())
			}
		}
	}
	return rc, cfg, uint32(orig.Port())
}
