package xdsparse

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/builtin"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// ParseListener parses a generated Listener through the wire decoder, as
// the proxy receives it (xdsparsetest.ParseListener for other packages).
func ParseListener(l *listenerv3.Listener) (*Listener, error) {
	b, err := proto.Marshal(l)
	if err != nil {
		return nil, err
	}
	_, out, err := DecodeListener(b)
	return out, err
}

// generatedListener is the LDS path DecodeListener replaced, kept as the
// oracle: go-control-plane's generated types, checkFields, then the parse.
func generatedListener(l *listenerv3.Listener) (*Listener, error) {
	if l.GetName() == "" {
		return nil, fmt.Errorf("listener: name is empty")
	}
	out := &Listener{Name: l.GetName(), BindToPort: true, UseOriginalDst: l.GetUseOriginalDst().GetValue()}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("listener %q: %s", l.GetName(), fmt.Sprintf(format, a...))
	}
	if err := checkFields(l, listenerRules); err != nil {
		return nil, fail("%v", err)
	}
	if pipe := l.GetAddress().GetPipe(); pipe != nil {
		// A unix domain socket (Istio's Gateway servers[].bind "unix://...").
		if pipe.GetPath() == "" || pipe.GetPath() == "@" {
			return nil, fail("address.pipe.path: empty")
		}
		if !strings.HasPrefix(pipe.GetPath(), "@") && !filepath.IsAbs(pipe.GetPath()) {
			return nil, fail("address.pipe.path %q: not an absolute path", pipe.GetPath())
		}
		if l.GetUseOriginalDst().GetValue() {
			return nil, fail("use_original_dst on a pipe address")
		}
		out.Network, out.Address = "unix", pipe.GetPath()
	} else {
		sa := l.GetAddress().GetSocketAddress()
		if sa == nil {
			return nil, fail("address: only socket_address and pipe are supported")
		}
		if sa.GetProtocol() != corev3.SocketAddress_TCP {
			return nil, fail("address.protocol %v: only TCP is supported", sa.GetProtocol())
		}
		port, ok := sa.GetPortSpecifier().(*corev3.SocketAddress_PortValue)
		if !ok || port.PortValue > 65535 {
			return nil, fail("address.port_value: missing or out of range")
		}
		out.Network, out.Address = "tcp", net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(port.PortValue)))
	}
	if b := l.GetBindToPort(); b != nil {
		out.BindToPort = b.GetValue()
	}
	lf, warnings, err := generatedListenerFilters(l)
	if err != nil {
		return nil, fail("%v", err)
	}
	out.Filters, out.Warnings = lf, append(out.Warnings, warnings...)
	if len(l.GetFilterChains()) == 0 && l.GetDefaultFilterChain() == nil {
		return nil, fail("filter_chains: empty and no default_filter_chain")
	}
	for i, fc := range l.GetFilterChains() {
		c, err := generatedFilterChain(fc)
		if skip, ok := err.(skipChainError); ok {
			out.Warnings = append(out.Warnings, fmt.Sprintf("filter_chains[%d] %q: skipped: %s", i, fc.GetName(), skip.reason))
			continue
		}
		if err != nil {
			return nil, fail("filter_chains[%d] %q: %v", i, fc.GetName(), err)
		}
		out.Chains = append(out.Chains, c)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		c, err := generatedFilterChain(fc)
		if skip, ok := err.(skipChainError); ok {
			out.Warnings = append(out.Warnings, "default_filter_chain: skipped: "+skip.reason)
		} else if err != nil {
			return nil, fail("default_filter_chain: %v", err)
		} else {
			out.Default = c
		}
	}
	if len(out.Chains) == 0 && out.Default == nil {
		return nil, fail("no filter chain can be served: %s", strings.Join(out.Warnings, "; "))
	}
	limit := DefaultConnBufferLimit
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		if v.GetValue() == 0 {
			return nil, fail("per_connection_buffer_limit_bytes: 0 would stall every connection")
		}
		limit = int(min(v.GetValue(), 1<<30))
	}
	for _, c := range append(out.Chains[:len(out.Chains):len(out.Chains)], out.Default) {
		if c != nil && c.HTTP != nil {
			c.HTTP.ConnBufferLimit = limit
		}
	}
	inbound := l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND
	for _, c := range append(out.Chains[:len(out.Chains):len(out.Chains)], out.Default) {
		switch {
		case c == nil:
		case c.HTTP != nil:
			c.HTTP.Inbound = inbound
		case c.TCP != nil:
			c.TCP.Inbound = inbound
		}
	}
	return out, nil
}

func generatedFilterChain(fc *listenerv3.FilterChain) (*FilterChain, error) {
	c := &FilterChain{Name: fc.GetName()}
	if err := generatedChainMatch(fc.GetFilterChainMatch(), &c.Match); err != nil {
		return nil, err
	}
	tc, err := generatedTransportSocket(fc.GetTransportSocket(), false)
	if err != nil {
		// A chain whose TLS cannot be served (an SDS secret nobody here serves, say)
		// is left out; the listener's other chains still work.
		return nil, skipChainError{err.Error()}
	}
	c.TLS = tc
	filters := fc.GetFilters()
	if len(filters) == 0 {
		return nil, fmt.Errorf("filters: empty")
	}
	reg := builtin.Registry()
	var stats *metrics.Config
	reporter := -1 // the first network filter that sees connections end
	for i, f := range filters[:len(filters)-1] {
		if f.GetName() == StatsFilterName {
			st, err := ParseStats(f.GetTypedConfig())
			if err != nil {
				return nil, fmt.Errorf("filters[%d] %q: %w", i, f.GetName(), err)
			}
			stats = st
			continue
		}
		nf, ok, err := reg.BuildNetwork(f.GetName(), i, f.GetTypedConfig())
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
	last := filters[len(filters)-1]
	a := last.GetTypedConfig()
	if a == nil {
		return nil, fmt.Errorf("filters[%d] %q: typed_config missing", len(filters)-1, last.GetName())
	}
	switch {
	case a.MessageIs((*hcmv3.HttpConnectionManager)(nil)):
		var h hcmv3.HttpConnectionManager
		if err := a.UnmarshalTo(&h); err != nil {
			return nil, fmt.Errorf("filters[%d] %q: %w", len(filters)-1, last.GetName(), err)
		}
		m, err := generatedHTTPManager(&h)
		if err != nil {
			return nil, fmt.Errorf("filters[%d] %q: %w", len(filters)-1, last.GetName(), err)
		}
		if stats != nil {
			return nil, fmt.Errorf("filters: the %s network filter only goes before %s (connection managers take it as an HTTP filter)", StatsFilterName, TCPProxyFilterName)
		}
		if reporter >= 0 {
			return nil, fmt.Errorf("filters[%d] %q: a network filter that reports connections goes only before %s (it counts their bytes)",
				reporter, filters[reporter].GetName(), TCPProxyFilterName)
		}
		c.HTTP = m
	case a.MessageIs((*tcpv3.TcpProxy)(nil)):
		var t tcpv3.TcpProxy
		if err := a.UnmarshalTo(&t); err != nil {
			return nil, fmt.Errorf("filters[%d] %q: %w", len(filters)-1, last.GetName(), err)
		}
		p, err := generatedTCPProxy(&t)
		if err != nil {
			return nil, fmt.Errorf("filters[%d] %q: %w", len(filters)-1, last.GetName(), err)
		}
		c.TCP = p
		c.TCP.Stats = stats
	default:
		return nil, fmt.Errorf("filters[%d] %q: terminal filter type %s not supported", len(filters)-1, last.GetName(), a.GetTypeUrl())
	}
	return c, nil
}

func generatedChainMatch(m *listenerv3.FilterChainMatch, out *ChainMatch) error {
	if m == nil {
		return nil
	}
	if err := checkFields(m, chainMatchRules); err != nil {
		return fmt.Errorf("filter_chain_match: %w", err)
	}
	for i, r := range m.GetPrefixRanges() {
		p, err := parseCIDR(r.GetAddressPrefix(), r.GetPrefixLen())
		if err != nil {
			return fmt.Errorf("filter_chain_match.prefix_ranges[%d]: %w", i, err)
		}
		out.PrefixRanges = append(out.PrefixRanges, p)
	}
	for i, r := range m.GetSourcePrefixRanges() {
		p, err := parseCIDR(r.GetAddressPrefix(), r.GetPrefixLen())
		if err != nil {
			return fmt.Errorf("filter_chain_match.source_prefix_ranges[%d]: %w", i, err)
		}
		out.SourcePrefixRanges = append(out.SourcePrefixRanges, p)
	}
	out.DestinationPort = m.GetDestinationPort().GetValue()
	if out.DestinationPort > 65535 {
		return fmt.Errorf("filter_chain_match.destination_port %d: out of range", out.DestinationPort)
	}
	for i, n := range m.GetServerNames() {
		if !validSNI(strings.TrimPrefix(n, "*.")) || strings.Contains(strings.TrimPrefix(n, "*."), "*") {
			return fmt.Errorf("filter_chain_match.server_names[%d] %q: not a server name or *.suffix wildcard", i, n)
		}
		out.ServerNames = append(out.ServerNames, strings.ToLower(n))
	}
	switch p := m.GetTransportProtocol(); p {
	case "", TransportTLS, TransportRawBuffer:
		out.TransportProtocol = p
	default:
		return skipChainError{fmt.Sprintf("filter_chain_match.transport_protocol %q: this proxy tells only tls and raw_buffer apart", p)}
	}
	out.ApplicationProtocols = slices.Clone(m.GetApplicationProtocols())
	return nil
}

// typeSuffix matches a listener filter by the type of its typed config.
func filterIs(f *listenerv3.ListenerFilter, name, typeSuffix string) bool {
	return f.GetName() == name || strings.HasSuffix(f.GetTypedConfig().GetTypeUrl(), typeSuffix)
}

// parseListenerFilters reads the listener filters; ones the proxy does
// not implement are reported as warnings (they only add behaviour Envoy
// would have, never take it away), except proxy_protocol, which changes the
// bytes on the wire and so makes the listener invalid.
func generatedListenerFilters(l *listenerv3.Listener) (ListenerFilters, []string, error) {
	out := ListenerFilters{OriginalDst: l.GetUseOriginalDst().GetValue(), Timeout: DefaultListenerFiltersTimeout,
		ContinueOnTimeout: l.GetContinueOnListenerFiltersTimeout()}
	if d := l.GetListenerFiltersTimeout(); d != nil {
		if d.AsDuration() < 0 {
			return out, nil, fmt.Errorf("listener_filters_timeout: negative")
		}
		out.Timeout = d.AsDuration()
	}
	var warnings []string
	for i, f := range l.GetListenerFilters() {
		switch {
		case filterIs(f, OriginalDstFilterName, ".original_dst.v3.OriginalDst"):
			out.OriginalDst = true
		case filterIs(f, HTTPInspectorFilterName, ".http_inspector.v3.HttpInspector"):
			out.HTTPInspector = true
		case filterIs(f, TLSInspectorFilterName, ".tls_inspector.v3.TlsInspector"):
			// The proxy inspects TLS whenever a chain depends on it.
		case f.GetName() == "envoy.filters.listener.proxy_protocol" || strings.HasSuffix(f.GetTypedConfig().GetTypeUrl(), ".proxy_protocol.v3.ProxyProtocol"):
			return out, nil, fmt.Errorf("listener_filters[%d] %q: not supported", i, f.GetName())
		default:
			warnings = append(warnings, fmt.Sprintf("listener_filters[%d] %q: ignored", i, f.GetName()))
		}
	}
	return out, warnings, nil
}
