package xdsparse

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/builtin"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// LDS resources are decoded from the wire (wire.go, pbwire): the Listener,
// its filter chains, their matches and the listener filters, so that
// envoy.config.listener.v3 is not linked into mast-proxy. The filters'
// typed configs (the connection manager, tcp_proxy) and transport sockets
// are still unmarshalled into generated types. The generated path it
// replaced is the tests' oracle (TestDecodeListenerMatchesGenerated,
// FuzzDecodeListener).

// Field numbers of envoy.config.listener.v3 messages and the core messages
// inside them.
const (
	lsName, lsAddress, lsFilterChains, lsUseOriginalDst, lsBufferLimit = 1, 2, 3, 4, 5
	lsListenerFilters, lsFiltersTimeout, lsTrafficDirection            = 9, 15, 16
	lsContinueOnTimeout, lsDefaultChain, lsBindToPort                  = 17, 25, 26

	fcMatch, fcFilters, fcTransportSocket, fcName = 1, 3, 6, 7
	flName, flTypedConfig                         = 1, 4
	lfName, lfTypedConfig                         = 1, 3

	fcmPrefixRanges, fcmSourcePrefixRanges, fcmDestinationPort = 3, 6, 8
	fcmTransportProtocol, fcmAppProtocols, fcmServerNames      = 9, 10, 11
	cidrPrefix, cidrLen                                        = 1, 2

	pipePath             = 1 // addrSocket, addrPipe, sa*: edswire.go
	trafficInbound       = 1
	socketTCP      int32 = 0
)

// DecodeListener decodes and parses an encoded Listener, as an LDS
// response carries it. It returns the name whenever the message could be
// decoded, so that a refused listener keeps its previous version.
func DecodeListener(b []byte) (string, *Listener, error) {
	if err := validateWire(descListener, b); err != nil {
		return "", nil, fmt.Errorf("listener: decode: %w", err)
	}
	l := decodeWire(descListener, b)
	name := l.Str(lsName)
	if name == "" {
		return "", nil, fmt.Errorf("listener: name is empty")
	}
	out, err := parseListenerWire(name, l)
	if err != nil {
		return name, nil, fmt.Errorf("listener %q: %w", name, err)
	}
	return name, out, nil
}

func parseListenerWire(name string, l *pbwire.Msg) (*Listener, error) {
	out := &Listener{Name: name, BindToPort: wireBool(l, lsBindToPort, true), UseOriginalDst: wireBool(l, lsUseOriginalDst, false)}
	if err := checkWire(l, listenerRules); err != nil {
		return nil, err
	}
	addr := l.Sub(lsAddress)
	if addr.Has(addrPipe) {
		// A unix domain socket (Istio's Gateway servers[].bind "unix://...").
		path := addr.Sub(addrPipe).Str(pipePath)
		if path == "" || path == "@" {
			return nil, fmt.Errorf("address.pipe.path: empty")
		}
		if !strings.HasPrefix(path, "@") && !filepath.IsAbs(path) {
			return nil, fmt.Errorf("address.pipe.path %q: not an absolute path", path)
		}
		if out.UseOriginalDst {
			return nil, fmt.Errorf("use_original_dst on a pipe address")
		}
		out.Network, out.Address = "unix", path
	} else {
		if !addr.Has(addrSocket) {
			return nil, fmt.Errorf("address: only socket_address and pipe are supported")
		}
		sa := addr.Sub(addrSocket)
		if p := int32(sa.U64(saProtocol)); p != socketTCP {
			return nil, fmt.Errorf("address.protocol %s: only TCP is supported", enumName(sa, saProtocol, p))
		}
		port := sa.U64(saPortValue)
		if !sa.Has(saPortValue) || uint32(port) > 65535 {
			return nil, fmt.Errorf("address.port_value: missing or out of range")
		}
		out.Network, out.Address = "tcp", net.JoinHostPort(sa.Str(saAddress), strconv.Itoa(int(uint32(port))))
	}
	lf, warnings, err := parseListenerFiltersWire(l, out.UseOriginalDst)
	if err != nil {
		return nil, err
	}
	out.Filters, out.Warnings = lf, append(out.Warnings, warnings...)
	chains := l.Subs(lsFilterChains)
	if len(chains) == 0 && !l.Has(lsDefaultChain) {
		return nil, fmt.Errorf("filter_chains: empty and no default_filter_chain")
	}
	for i, fc := range chains {
		c, err := parseFilterChainWire(fc)
		if skip, ok := err.(skipChainError); ok {
			out.Warnings = append(out.Warnings, fmt.Sprintf("filter_chains[%d] %q: skipped: %s", i, fc.Str(fcName), skip.reason))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("filter_chains[%d] %q: %v", i, fc.Str(fcName), err)
		}
		out.Chains = append(out.Chains, c)
	}
	if l.Has(lsDefaultChain) {
		c, err := parseFilterChainWire(l.Sub(lsDefaultChain))
		if skip, ok := err.(skipChainError); ok {
			out.Warnings = append(out.Warnings, "default_filter_chain: skipped: "+skip.reason)
		} else if err != nil {
			return nil, fmt.Errorf("default_filter_chain: %v", err)
		} else {
			out.Default = c
		}
	}
	if len(out.Chains) == 0 && out.Default == nil {
		return nil, fmt.Errorf("no filter chain can be served: %s", strings.Join(out.Warnings, "; "))
	}
	limit := DefaultConnBufferLimit
	if l.Has(lsBufferLimit) {
		v := wrapperU32(l, lsBufferLimit, 0)
		if v == 0 {
			return nil, fmt.Errorf("per_connection_buffer_limit_bytes: 0 would stall every connection")
		}
		limit = int(min(v, 1<<30))
	}
	inbound := l.U64(lsTrafficDirection) == trafficInbound
	for _, c := range append(out.Chains[:len(out.Chains):len(out.Chains)], out.Default) {
		switch {
		case c == nil:
		case c.HTTP != nil:
			c.HTTP.ConnBufferLimit = limit
			c.HTTP.Inbound = inbound
		case c.TCP != nil:
			c.TCP.Inbound = inbound
		}
	}
	return out, nil
}

// parseListenerFiltersWire reads the listener filters; ones the proxy does
// not implement are reported as warnings (they only add behaviour Envoy
// would have, never take it away), except proxy_protocol, which changes the
// bytes on the wire and so makes the listener invalid.
func parseListenerFiltersWire(l *pbwire.Msg, originalDst bool) (ListenerFilters, []string, error) {
	out := ListenerFilters{OriginalDst: originalDst, Timeout: DefaultListenerFiltersTimeout, ContinueOnTimeout: l.U64(lsContinueOnTimeout) != 0}
	if l.Has(lsFiltersTimeout) {
		d := wireDuration(l.Bytes(lsFiltersTimeout))
		if d < 0 {
			return out, nil, fmt.Errorf("listener_filters_timeout: negative")
		}
		out.Timeout = d
	}
	var warnings []string
	for i, f := range l.Subs(lsListenerFilters) {
		name, url := f.Str(lfName), f.Sub(lfTypedConfig).Str(anyTypeURL)
		is := func(n, typeSuffix string) bool { return name == n || strings.HasSuffix(url, typeSuffix) }
		switch {
		case is(OriginalDstFilterName, ".original_dst.v3.OriginalDst"):
			out.OriginalDst = true
		case is(HTTPInspectorFilterName, ".http_inspector.v3.HttpInspector"):
			out.HTTPInspector = true
		case is(TLSInspectorFilterName, ".tls_inspector.v3.TlsInspector"):
			// The proxy inspects TLS whenever a chain depends on it.
		case name == "envoy.filters.listener.proxy_protocol" || strings.HasSuffix(url, ".proxy_protocol.v3.ProxyProtocol"):
			return out, nil, fmt.Errorf("listener_filters[%d] %q: not supported", i, name)
		default:
			warnings = append(warnings, fmt.Sprintf("listener_filters[%d] %q: ignored", i, name))
		}
	}
	return out, warnings, nil
}

// typedConfig returns a filter's typed_config (field num), nil when absent.
func typedConfig(f *pbwire.Msg, num protowire.Number) *anypb.Any {
	if !f.Has(num) {
		return nil
	}
	return wireAny(f.Bytes(num))
}

func parseFilterChainWire(fc *pbwire.Msg) (*FilterChain, error) {
	c := &FilterChain{Name: fc.Str(fcName)}
	if fc.Has(fcMatch) {
		if err := parseChainMatchWire(fc.Sub(fcMatch), &c.Match); err != nil {
			return nil, err
		}
	}
	tc, err := parseTransportSocketWire(transportSocket(fc, fcTransportSocket), false)
	if err != nil {
		// A chain whose TLS cannot be served (an SDS secret nobody here serves, say)
		// is left out; the listener's other chains still work.
		return nil, skipChainError{err.Error()}
	}
	c.TLS = tc
	filters := fc.Subs(fcFilters)
	if len(filters) == 0 {
		return nil, fmt.Errorf("filters: empty")
	}
	reg := builtin.Registry()
	var stats *metrics.Config
	reporter := -1 // the first network filter that sees connections end
	for i, f := range filters[:len(filters)-1] {
		name, cfg := f.Str(flName), typedConfig(f, flTypedConfig)
		if name == StatsFilterName {
			st, err := ParseStats(cfg)
			if err != nil {
				return nil, fmt.Errorf("filters[%d] %q: %w", i, name, err)
			}
			stats = st
			continue
		}
		nf, ok, err := reg.BuildNetwork(name, i, cfg)
		if err != nil {
			return nil, err
		}
		if ok {
			c.Network = append(c.Network, nf)
			if _, closes := nf.(filter.CloseFilter); closes && reporter < 0 {
				reporter = i
			}
		}
	}
	last := len(filters) - 1
	lastName, a := filters[last].Str(flName), typedConfig(filters[last], flTypedConfig)
	if a == nil {
		return nil, fmt.Errorf("filters[%d] %q: typed_config missing", last, lastName)
	}
	switch {
	case anyIs(a.GetTypeUrl(), hcmConfigName):
		m, err := DecodeHTTPManager(a.GetValue())
		if err != nil {
			return nil, fmt.Errorf("filters[%d] %q: %w", last, lastName, err)
		}
		if stats != nil {
			return nil, fmt.Errorf("filters: the %s network filter only goes before %s (connection managers take it as an HTTP filter)", StatsFilterName, TCPProxyFilterName)
		}
		if reporter >= 0 {
			return nil, fmt.Errorf("filters[%d] %q: a network filter that reports connections goes only before %s (it counts their bytes)",
				reporter, filters[reporter].Str(flName), TCPProxyFilterName)
		}
		c.HTTP = m
	case anyIs(a.GetTypeUrl(), tcpProxyConfigName):
		t, err := unpackTyped(descTCPProxy, a.GetValue())
		if err != nil {
			return nil, fmt.Errorf("filters[%d] %q: %w", last, lastName, err)
		}
		p, err := parseTCPProxyWire(t)
		if err != nil {
			return nil, fmt.Errorf("filters[%d] %q: %w", last, lastName, err)
		}
		c.TCP = p
		c.TCP.Stats = stats
	default:
		return nil, fmt.Errorf("filters[%d] %q: terminal filter type %s not supported", last, lastName, a.GetTypeUrl())
	}
	return c, nil
}

func parseChainMatchWire(m *pbwire.Msg, out *ChainMatch) error {
	if err := checkWire(m, chainMatchRules); err != nil {
		return fmt.Errorf("filter_chain_match: %w", err)
	}
	for i, r := range m.Subs(fcmPrefixRanges) {
		p, err := parseCIDR(r.Str(cidrPrefix), wireU32Value(r, cidrLen))
		if err != nil {
			return fmt.Errorf("filter_chain_match.prefix_ranges[%d]: %w", i, err)
		}
		out.PrefixRanges = append(out.PrefixRanges, p)
	}
	for i, r := range m.Subs(fcmSourcePrefixRanges) {
		p, err := parseCIDR(r.Str(cidrPrefix), wireU32Value(r, cidrLen))
		if err != nil {
			return fmt.Errorf("filter_chain_match.source_prefix_ranges[%d]: %w", i, err)
		}
		out.SourcePrefixRanges = append(out.SourcePrefixRanges, p)
	}
	out.DestinationPort = wrapperU32(m, fcmDestinationPort, 0)
	if out.DestinationPort > 65535 {
		return fmt.Errorf("filter_chain_match.destination_port %d: out of range", out.DestinationPort)
	}
	for i, n := range wireStrings(m, fcmServerNames) {
		if !validSNI(strings.TrimPrefix(n, "*.")) || strings.Contains(strings.TrimPrefix(n, "*."), "*") {
			return fmt.Errorf("filter_chain_match.server_names[%d] %q: not a server name or *.suffix wildcard", i, n)
		}
		out.ServerNames = append(out.ServerNames, strings.ToLower(n))
	}
	switch p := m.Str(fcmTransportProtocol); p {
	case "", TransportTLS, TransportRawBuffer:
		out.TransportProtocol = p
	default:
		return skipChainError{fmt.Sprintf("filter_chain_match.transport_protocol %q: this proxy tells only tls and raw_buffer apart", p)}
	}
	out.ApplicationProtocols = wireStrings(m, fcmAppProtocols)
	return nil
}

// wireU32Value returns a google.protobuf.UInt32Value field, nil when absent.
func wireU32Value(m *pbwire.Msg, num protowire.Number) *wrapperspb.UInt32Value {
	if !m.Has(num) {
		return nil
	}
	return wrapperspb.UInt32(wrapperU32(m, num, 0))
}
