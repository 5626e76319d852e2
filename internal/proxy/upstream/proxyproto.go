package upstream

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// proxyHeader is the PROXY protocol header (version 1 or 2, HAProxy's
// proxy-protocol.txt) that Envoy's upstream_proxy_protocol transport socket
// writes: the connection's source and destination. Addresses that are not
// both IPv4 or both IPv6 TCP addresses give v1's "PROXY UNKNOWN" and v2's
// LOCAL command, as Envoy does.
func proxyHeader(version uint8, src, dst net.Addr) []byte {
	s, d := tcpAddrPort(src), tcpAddrPort(dst)
	ok := s.IsValid() && d.IsValid() && s.Addr().Is4() == d.Addr().Is4()
	if version == 1 {
		if !ok {
			return []byte("PROXY UNKNOWN\r\n")
		}
		fam := "TCP6"
		if s.Addr().Is4() {
			fam = "TCP4"
		}
		return []byte("PROXY " + fam + " " + s.Addr().String() + " " + d.Addr().String() + " " +
			strconv.Itoa(int(s.Port())) + " " + strconv.Itoa(int(d.Port())) + "\r\n")
	}
	b := append([]byte(nil), "\r\n\r\n\x00\r\nQUIT\n"...)
	if !ok {
		// version 2, LOCAL; AF_UNSPEC, no address block
		return append(b, 0x20, 0x00, 0x00, 0x00)
	}
	b = append(b, 0x21) // version 2, PROXY
	if s.Addr().Is4() {
		b = append(b, 0x11, 0x00, 12) // TCP over IPv4, 12 address bytes
	} else {
		b = append(b, 0x21, 0x00, 36) // TCP over IPv6, 36 address bytes
	}
	b = append(b, s.Addr().AsSlice()...)
	b = append(b, d.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

// tcpAddrPort is a's IP address and port with IPv4-mapped IPv6 addresses
// unmapped; invalid for any other kind of address.
func tcpAddrPort(a net.Addr) netip.AddrPort {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// writeProxyHeader sends the pool's PROXY protocol header on nc, naming
// src and dst (the downstream connection's addresses for tcp_proxy) or,
// when they are nil, nc's own local and remote addresses (the fallback
// Envoy uses where no downstream connection is passed down, as for pooled
// HTTP connections).
func (p *pool) writeProxyHeader(nc net.Conn, src, dst net.Addr) error {
	if src == nil || dst == nil {
		src, dst = nc.LocalAddr(), nc.RemoteAddr()
	}
	nc.SetWriteDeadline(time.Now().Add(p.cfg.connectTimeout))
	_, err := nc.Write(proxyHeader(p.cfg.proxyProtocol, src, dst))
	nc.SetWriteDeadline(time.Time{})
	return err
}
