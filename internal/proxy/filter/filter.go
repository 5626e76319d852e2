// Package filter is mast-proxy's filter chain: the one interface every HTTP
// filter (jwt_authn, ext_authz, rbac, fault, cors, ratelimit, ...) and every
// network filter (rbac on TCP) implements, the per-request state they share,
// and the registry that turns an HttpConnectionManager's http_filters (or a
// filter chain's network filters) into a built chain.
//
// # The model
//
// It follows Envoy's StreamDecoderFilter / StreamEncoderFilter and caddy's
// MiddlewareHandler, cut down to what a Go proxy needs without allocating:
//
//   - A filter is built once per listener from its typed_config (a
//     [Factory] in a [Registry]) and is immutable and shared by every request
//     on that listener. Per-request state lives in the [Request], never in
//     the filter.
//   - [HTTPFilter.DecodeHeaders] runs for every request, in the order of
//     http_filters, after path normalization and route selection (so
//     r.Route is known, as Envoy's cached route is). It returns [Continue],
//     or [Stop] after calling r.LocalReply: the chain ends there and the
//     proxy answers with that reply (the router never runs).
//   - A filter that also implements [ResponseFilter] sees the response head
//     (status and headers, mutable) in reverse order, for upstream
//     responses and local replies alike.
//   - A filter that implements [BodyFilter] makes the chain buffer the
//     request body (up to the connection manager's buffer limit). As in
//     Envoy, where a filter that buffers the body holds back the filters
//     after it, the first body filter sees the body before the filters after
//     it see the request head: DecodeHeaders runs the filters up to it,
//     DecodeBody runs its body phase and then the later filters' head (and
//     body) phases. So ext_authz with_request_body still decides before the
//     RBAC filters istiod puts after it, and they see its header mutations.
//     Chains without one never touch the body, so the hot path stays
//     allocation-free.
//   - Per-route configuration (typed_per_filter_config) is parsed by the
//     factory's PerRoute parser when RDS arrives; at request time a filter
//     asks r.Route.PerFilterConfig(its configured name) and type-asserts it.
//
// Network filters ([NetworkFilter]) see the connection once, after TLS and
// before the terminal filter (http_connection_manager or tcp_proxy), and
// either let it through or close it. Those that also implement
// [CloseFilter] see it end, with the bytes tcp_proxy relayed, and may read
// those counts while it lasts (Istio's Mixer TCP filter reports them).
//
// # Adding a filter
//
// Write a package internal/proxy/filter/<name> with a type implementing
// HTTPFilter (plus ResponseFilter / BodyFilter if needed) and a compile-time
// guard (var _ filter.HTTPFilter = (*X)(nil)), a New func parsing the typed
// config (NACK: return an error naming the field for anything not honoured),
// and add one line to the table in internal/proxy/filter/builtin.
package filter

import (
	"context"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Status is what a filter's request phase tells the chain.
type Status uint8

const (
	// Continue passes the request to the next filter.
	Continue Status = iota
	// Stop ends the chain: the filter called Request.LocalReply (or, for a
	// network filter, the connection is closed).
	Stop
)

// HTTPFilter is one HTTP filter of a listener's chain.
type HTTPFilter interface {
	// DecodeHeaders sees the request head. ctx ends when the client goes
	// away; a filter that waits (fault delay, ext_authz) must honour it and
	// return Stop with no reply when it ends.
	DecodeHeaders(ctx context.Context, r *Request) Status
}

// ResponseFilter is implemented by HTTP filters that see responses.
type ResponseFilter interface {
	// EncodeHeaders sees the response status and head before it is written.
	EncodeHeaders(r *Request, status int, h *headers.List)
}

// BodyFilter is implemented by HTTP filters that need the request body.
type BodyFilter interface {
	// DecodeBody sees the buffered request body (complete reports whether it
	// is all of it: false when it is longer than the buffer limit).
	DecodeBody(ctx context.Context, r *Request, body []byte, complete bool) Status
}

// IdleFilter is implemented by HTTP filters that can tell from a route's
// configuration alone that they leave every request on it alone.
type IdleFilter interface {
	// IdleOn reports whether, for every request whose route is rc
	// (non-nil), DecodeHeaders returns Continue without changing the
	// request (no flags, metadata or Defer) and EncodeHeaders, if the
	// filter has it, leaves the response head alone.
	IdleOn(rc RouteConfig) bool
}

// StatsFilter is implemented by HTTP filters with statistics of their own:
// admin's /stats calls add for each (name without the "http." prefix).
type StatsFilter interface {
	Stats(add func(name string, value int64, gauge bool))
}

// NetworkFilter is one network filter before a chain's terminal filter.
type NetworkFilter interface {
	// OnConnect decides whether the connection may proceed: Continue, or
	// Stop to close it.
	OnConnect(c *Conn) Status
}

// CloseFilter is implemented by network filters that see the connection
// end. The counts in Conn.Received and Conn.Sent are tcp_proxy's, so a
// CloseFilter goes only before tcp_proxy (xdsparse refuses it elsewhere).
type CloseFilter interface {
	// OnClose is called once, after the terminal filter is done with the
	// connection, for every filter whose OnConnect ran, in reverse order.
	OnClose(c *Conn)
}

// Chain is a listener's built HTTP filter chain, in http_filters order.
// A nil *Chain is an empty chain.
type Chain struct {
	Names   []string // the configured names, parallel to filters
	filters []HTTPFilter
	resp    []ResponseFilter // reverse order
	// firstBody is the index of the first BodyFilter (-1: none).
	firstBody int
}

// NewChain builds a chain from filters with their configured names.
func NewChain(names []string, filters []HTTPFilter) *Chain {
	c := &Chain{Names: names, filters: filters, firstBody: -1}
	for i := len(filters) - 1; i >= 0; i-- {
		if rf, ok := filters[i].(ResponseFilter); ok {
			c.resp = append(c.resp, rf)
		}
		if _, ok := filters[i].(BodyFilter); ok {
			c.firstBody = i
		}
	}
	return c
}

// Len is the number of filters.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.filters)
}

// Filter returns the i-th filter (for tests and config dumps).
func (c *Chain) Filter(i int) HTTPFilter { return c.filters[i] }

// NeedsBody reports whether some filter reads the request body.
func (c *Chain) NeedsBody() bool { return c != nil && c.firstBody >= 0 }

// HasResponseFilters reports whether some filter sees responses.
func (c *Chain) HasResponseFilters() bool { return c != nil && len(c.resp) > 0 }

// IdleOn reports whether every filter of the chain is an [IdleFilter] idle
// on rc (non-nil): the chain would leave each request on that route and
// its response alone, so the proxy may skip it. The answer depends only on
// the chain and rc, which are immutable, so callers may remember it.
func (c *Chain) IdleOn(rc RouteConfig) bool {
	if c == nil {
		return true
	}
	for _, f := range c.filters {
		if i, ok := f.(IdleFilter); !ok || !i.IdleOn(rc) {
			return false
		}
	}
	return true
}

// DecodeHeaders runs the filters' request head phase in order, up to and
// including the first body filter (the rest run in DecodeBody).
func (c *Chain) DecodeHeaders(ctx context.Context, r *Request) Status {
	if c == nil {
		return Continue
	}
	last := len(c.filters) - 1
	if c.firstBody >= 0 {
		last = c.firstBody
	}
	for _, f := range c.filters[:last+1] {
		if f.DecodeHeaders(ctx, r) == Stop {
			return Stop
		}
	}
	return Continue
}

// DecodeBody runs, once the body is buffered, the first body filter's body
// phase and then the later filters' head phase (and body phase, for body
// filters), in order.
func (c *Chain) DecodeBody(ctx context.Context, r *Request, body []byte, complete bool) Status {
	if c == nil || c.firstBody < 0 {
		return Continue
	}
	for i := c.firstBody; i < len(c.filters); i++ {
		f := c.filters[i]
		if i > c.firstBody && f.DecodeHeaders(ctx, r) == Stop {
			return Stop
		}
		if bf, ok := f.(BodyFilter); ok && bf.DecodeBody(ctx, r, body, complete) == Stop {
			return Stop
		}
	}
	return Continue
}

// EncodeHeaders runs the response phase in reverse order.
func (c *Chain) EncodeHeaders(r *Request, status int, h *headers.List) {
	if c == nil {
		return
	}
	for _, f := range c.resp {
		f.EncodeHeaders(r, status, h)
	}
}

// RunNetwork runs network filters in order; ok false means close the
// connection. ran is how many filters' OnConnect ran, for [CloseNetwork].
func RunNetwork(filters []NetworkFilter, c *Conn) (ran int, ok bool) {
	for i, f := range filters {
		if f.OnConnect(c) == Stop {
			return i + 1, false
		}
	}
	return len(filters), true
}

// CloseNetwork tells the first ran filters that implement CloseFilter that
// the connection ended, in reverse order.
func CloseNetwork(filters []NetworkFilter, ran int, c *Conn) {
	for i := ran - 1; i >= 0; i-- {
		if cf, ok := filters[i].(CloseFilter); ok {
			cf.OnClose(c)
		}
	}
}
