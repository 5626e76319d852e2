package xdsparse

import (
	"net/netip"
	"slices"
	"strings"
)

// Transport protocols a filter chain may match.
const (
	TransportTLS       = "tls"
	TransportRawBuffer = "raw_buffer"
)

// skipChainError marks a filter chain that is valid but cannot be served
// by this proxy; the listener keeps its other chains.
type skipChainError struct{ reason string }

func (e skipChainError) Error() string { return e.reason }

// NeedsInspection reports whether choosing a chain depends on the
// connection's first bytes (TLS or not, SNI, ALPN), so that the proxy must
// peek at them before SelectChain.
func (l *Listener) NeedsInspection() bool {
	for _, c := range l.Chains {
		m := &c.Match
		if len(m.ServerNames) > 0 || m.TransportProtocol != "" || len(m.ApplicationProtocols) > 0 {
			return true
		}
	}
	return false
}

// SelectChain picks the filter chain for a connection to destination port
// with the properties in: as Envoy does, criteria narrow the candidates in
// order — destination port, server name, transport protocol, application
// protocols — and at each step only the most specific matching chains stay
// (an exact port over any port, an exact name over the longest wildcard over
// none, a named protocol over none). No match falls back to the default
// chain; nil means the connection is closed.
func (l *Listener) SelectChain(port uint32, in ConnInfo) *FilterChain {
	var buf [32]*FilterChain
	cands := append(buf[:0], l.Chains...)
	transport := TransportRawBuffer
	if in.TLS {
		transport = TransportTLS
	}
	cands = narrow(cands, func(m *ChainMatch) int {
		switch m.DestinationPort {
		case port:
			return 1
		case 0:
			return 0
		}
		return -1
	})
	cands = narrow(cands, func(m *ChainMatch) int { return prefixScore(m.PrefixRanges, in.Dst) })
	cands = narrow(cands, func(m *ChainMatch) int { return serverNameScore(m.ServerNames, in.SNI) })
	cands = narrow(cands, func(m *ChainMatch) int {
		switch m.TransportProtocol {
		case transport:
			return 1
		case "":
			return 0
		}
		return -1
	})
	cands = narrow(cands, func(m *ChainMatch) int {
		if len(m.ApplicationProtocols) == 0 {
			return 0
		}
		for _, p := range in.ALPN {
			if slices.Contains(m.ApplicationProtocols, p) {
				return 1
			}
		}
		return -1
	})
	cands = narrow(cands, func(m *ChainMatch) int { return prefixScore(m.SourcePrefixRanges, in.Src) })
	if len(cands) > 0 {
		return cands[0]
	}
	return l.Default
}

// prefixScore: -1 no match, 0 no ranges configured, 1+bits of the longest
// matching range.
func prefixScore(ranges []netip.Prefix, a netip.Addr) int {
	if len(ranges) == 0 {
		return 0
	}
	best := -1
	for _, p := range ranges {
		if a.IsValid() && p.Contains(a) {
			best = max(best, 1+p.Bits())
		}
	}
	return best
}

// NeedsAddresses reports whether choosing a chain depends on the
// connection's destination or source address.
func (l *Listener) NeedsAddresses() bool {
	for _, c := range l.Chains {
		if len(c.Match.PrefixRanges) > 0 || len(c.Match.SourcePrefixRanges) > 0 {
			return true
		}
	}
	return false
}

// narrow keeps the candidates with the highest non-negative score, in order.
func narrow(cands []*FilterChain, score func(*ChainMatch) int) []*FilterChain {
	best := -1
	for _, c := range cands {
		best = max(best, score(&c.Match))
	}
	if best < 0 {
		return cands[:0]
	}
	out := cands[:0]
	for _, c := range cands {
		if score(&c.Match) == best {
			out = append(out, c)
		}
	}
	return out
}

// serverNameScore: -1 no match, 0 no names configured, 1+len(suffix) for a
// wildcard, 1<<20 for an exact name.
func serverNameScore(names []string, sni string) int {
	if len(names) == 0 {
		return 0
	}
	sni = strings.ToLower(sni)
	best := -1
	for _, n := range names {
		if n == sni && sni != "" {
			return 1 << 20
		}
		if suffix, ok := strings.CutPrefix(n, "*"); ok && len(sni) > len(suffix) && strings.HasSuffix(sni, suffix) {
			best = max(best, 1+len(suffix))
		}
	}
	return best
}
