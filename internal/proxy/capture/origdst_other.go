//go:build !linux

package capture

import (
	"errors"
	"net"
	"net/netip"
)

// OriginalDst returns where a connection redirected by the capture rules was
// going. Transparent capture needs Linux netfilter; elsewhere it fails.
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("capture: original destination: needs Linux netfilter")
}
