package capture

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and
// IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h): both are 80, at
// levels SOL_IP and SOL_IPV6.
const soOriginalDst = 80

// OriginalDst returns where a connection redirected by the capture rules was
// going before REDIRECT rewrote its destination to the proxy: the
// SO_ORIGINAL_DST of its conntrack entry (IP6T_SO_ORIGINAL_DST for IPv6).
// For a connection that was not redirected it is the local address. It fails
// when conntrack does not track the connection.
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	local, _ := c.LocalAddr().(*net.TCPAddr)
	v6 := local != nil && local.IP.To4() == nil
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("capture: original destination: %w", err)
	}
	var (
		ap   netip.AddrPort
		serr error
	)
	cerr := rc.Control(func(fd uintptr) {
		ap, serr = originalDst(int(fd), v6)
	})
	if err := errors.Join(cerr, serr); err != nil {
		return netip.AddrPort{}, fmt.Errorf("capture: original destination of %v: %w", c.LocalAddr(), err)
	}
	return ap, nil
}

func originalDst(fd int, v6 bool) (netip.AddrPort, error) {
	if !v6 {
		var sa unix.RawSockaddrInet4
		if err := getsockopt(fd, unix.SOL_IP, unsafe.Pointer(&sa), unix.SizeofSockaddrInet4); err != nil {
			return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", err)
		}
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port)), nil
	}
	var sa unix.RawSockaddrInet6
	if err := getsockopt(fd, unix.SOL_IPV6, unsafe.Pointer(&sa), unix.SizeofSockaddrInet6); err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt IP6T_SO_ORIGINAL_DST: %w", err)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port)), nil
}

func getsockopt(fd, level int, p unsafe.Pointer, size uint32) error {
	l := size
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), soOriginalDst,
		uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// ntohs converts a port in network byte order, as the kernel stores it in a
// sockaddr, to a number.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}
