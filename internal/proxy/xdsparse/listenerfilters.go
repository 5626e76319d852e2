package xdsparse

import "time"

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
