package upstream

import (
	"bytes"
	"net"
	"testing"
)

func TestProxyHeader(t *testing.T) {
	v4s := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 40000}
	v4d := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5432}
	v6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}
	sig := "\r\n\r\n\x00\r\nQUIT\n"
	for _, c := range []struct {
		name     string
		version  uint8
		src, dst net.Addr
		want     string
	}{
		{"v1 IPv4", 1, v4s, v4d, "PROXY TCP4 10.1.2.3 127.0.0.1 40000 5432\r\n"},
		{"v1 IPv6", 1, v6, v6, "PROXY TCP6 2001:db8::1 2001:db8::1 443 443\r\n"},
		{"v1 mixed families", 1, v4s, v6, "PROXY UNKNOWN\r\n"},
		{"v1 not TCP", 1, &net.UnixAddr{Name: "/x"}, v4d, "PROXY UNKNOWN\r\n"},
		{"v2 IPv4", 2, v4s, v4d, sig + "\x21\x11\x00\x0c" + "\x0a\x01\x02\x03" + "\x7f\x00\x00\x01" + "\x9c\x40" + "\x15\x38"},
		{"v2 IPv6", 2, v6, v6, sig + "\x21\x21\x00\x24" + string(net.ParseIP("2001:db8::1")) + string(net.ParseIP("2001:db8::1")) + "\x01\xbb\x01\xbb"},
		{"v2 mixed families: LOCAL", 2, v4s, v6, sig + "\x20\x00\x00\x00"},
	} {
		if got := proxyHeader(c.version, c.src, c.dst); !bytes.Equal(got, []byte(c.want)) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
