package xdsparse

import (
	"fmt"
	"strings"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	// Registered so listener filters' typed configs decode in config dumps.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
)

// Listener filter names this proxy acts on.
const (
	OriginalDstFilterName   = "envoy.filters.listener.original_dst"
	HTTPInspectorFilterName = "envoy.filters.listener.http_inspector"
	TLSInspectorFilterName  = "envoy.filters.listener.tls_inspector"
)

// DefaultListenerFiltersTimeout is Envoy's listener_filters_timeout default.
const DefaultListenerFiltersTimeout = 15 * time.Second

// ListenerFilters is what a listener's listener_filters ask of the proxy
// before a connection reaches its filter chain.
type ListenerFilters struct {
	// OriginalDst: the destination the connection had before an iptables
	// REDIRECT (SO_ORIGINAL_DST) is its local address for chain matching and
	// ORIGINAL_DST clusters. use_original_dst implies it.
	OriginalDst bool
	// HTTPInspector: the first bytes are peeked; an HTTP/1 request line
	// sets the application protocol "http/1.1" (or "http/1.0"), the HTTP/2
	// preface "h2c", for filter chains matching application_protocols.
	HTTPInspector bool
	// Timeout bounds the wait for those first bytes (0: no bound); when it
	// passes, the connection goes on without an application protocol if
	// ContinueOnTimeout, else it is closed.
	Timeout           time.Duration
	ContinueOnTimeout bool
}

// typeSuffix matches a listener filter by the type of its typed config.
func filterIs(f *listenerv3.ListenerFilter, name, typeSuffix string) bool {
	return f.GetName() == name || strings.HasSuffix(f.GetTypedConfig().GetTypeUrl(), typeSuffix)
}

// parseListenerFilters reads the listener filters; ones the proxy does
// not implement are reported as warnings (they only add behaviour Envoy
// would have, never take it away), except proxy_protocol, which changes the
// bytes on the wire and so makes the listener invalid.
func parseListenerFilters(l *listenerv3.Listener) (ListenerFilters, []string, error) {
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
