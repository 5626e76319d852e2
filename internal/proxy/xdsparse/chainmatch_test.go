package xdsparse

import (
	"net/netip"
	"testing"
)

// Envoy's order: the destination prefix narrows the chains before the
// server name, and a connection does not fall back to a less specific
// destination when no name matches among the narrower chains; the source
// prefix comes after the transport protocol.
func TestSelectChainDestinationBeforeServerName(t *testing.T) {
	p := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	chains := []*FilterChain{
		{Name: "a-in-subnet", Match: ChainMatch{PrefixRanges: p("127.0.0.2/32"), ServerNames: []string{"a.example.com"}}},
		{Name: "a", Match: ChainMatch{ServerNames: []string{"a.example.com"}}},
		{Name: "b", Match: ChainMatch{ServerNames: []string{"b.example.com"}}},
		{Name: "tls-from-s", Match: ChainMatch{PrefixRanges: p("127.0.0.3/32"), TransportProtocol: TransportTLS, SourcePrefixRanges: p("127.0.0.5/32")}},
		{Name: "tls", Match: ChainMatch{PrefixRanges: p("127.0.0.3/32"), TransportProtocol: TransportTLS}},
		{Name: "from-s", Match: ChainMatch{PrefixRanges: p("127.0.0.3/32"), SourcePrefixRanges: p("127.0.0.0/24")}},
	}
	l := &Listener{Chains: chains, Default: &FilterChain{Name: "default"}}
	for _, tc := range []struct {
		dst, src, sni string
		tls           bool
		want          string
	}{
		{"127.0.0.2", "127.0.0.9", "a.example.com", true, "a-in-subnet"},
		{"127.0.0.4", "127.0.0.9", "a.example.com", true, "a"},
		{"127.0.0.4", "127.0.0.9", "b.example.com", true, "b"},
		{"127.0.0.2", "127.0.0.9", "b.example.com", true, "default"},
		{"127.0.0.3", "127.0.0.5", "", true, "tls-from-s"},
		{"127.0.0.3", "127.0.0.9", "", true, "tls"},
		{"127.0.0.3", "127.0.0.5", "", false, "from-s"},
		{"127.0.0.3", "127.0.1.5", "", false, "default"},
	} {
		in := ConnInfo{TLS: tc.tls, SNI: tc.sni, Dst: netip.MustParseAddr(tc.dst), Src: netip.MustParseAddr(tc.src)}
		if got := l.SelectChain(443, in); got.Name != tc.want {
			t.Errorf("to %s from %s, TLS %v, SNI %q: chain %s, want %s", tc.dst, tc.src, tc.tls, tc.sni, got.Name, tc.want)
		}
	}
}
