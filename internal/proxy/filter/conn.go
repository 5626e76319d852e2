package filter

import (
	"crypto/tls"
	"net"
	"net/netip"
	"time"
)

// NewConn describes a downstream connection for the filters: its peer, its
// local address (the original destination of a redirected connection, when
// the connection says so) and, for TLS the proxy terminated, the SNI and the
// verified client certificate's identity.
func NewConn(nc net.Conn) *Conn {
	c := &Conn{Remote: addrPort(nc.RemoteAddr()), Local: addrPort(nc.LocalAddr()), Start: time.Now()}
	if o, ok := nc.(interface{ OriginalDst() netip.AddrPort }); ok {
		if a := o.OriginalDst(); a.IsValid() {
			c.Local = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		}
	}
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return c
	}
	cs := tc.ConnectionState()
	c.TLS, c.SNI = true, cs.ServerName
	if len(cs.PeerCertificates) == 0 {
		return c
	}
	leaf := cs.PeerCertificates[0]
	switch {
	case len(leaf.URIs) > 0:
		c.SetPrincipal(leaf.URIs[0].String())
	case len(leaf.DNSNames) > 0:
		c.Principal = leaf.DNSNames[0]
	default:
		c.Principal = leaf.Subject.String()
	}
	return c
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(t.Port))
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
