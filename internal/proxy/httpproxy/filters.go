package httpproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/http1"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// trustedClient is Envoy's downstream remote address: the connection's peer,
// or the x-forwarded-for entry the connection manager trusts (called before
// the proxy appends to x-forwarded-for). remoteIP is remote parsed once for
// the connection, or the zero Addr.
func trustedClient(h headers.List, hcm *xdsparse.HTTPManager, remote string, remoteIP netip.Addr) netip.Addr {
	s := ""
	if hcm.UseRemoteAddress {
		if hcm.XffTrustedHops > 0 {
			s, _ = lastXFFAddress(joinedXFF(h), hcm.XffTrustedHops-1)
		}
	} else if h.Has(hdrXFF) {
		s, _ = lastXFFAddress(joinedXFF(h), hcm.XffTrustedHops)
	}
	if s == "" {
		if remoteIP.IsValid() {
			return remoteIP
		}
		s = remote
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

// filterWriter runs the response filters on the response head.
type filterWriter struct {
	responseWriter
	chain *filter.Chain
	r     *filter.Request
	h     headers.List // the head being written
}

func (f *filterWriter) WriteHead(status int, h headers.List, contentLength int64) error {
	f.h = h // the filters take its address: a parameter would move to the heap
	f.chain.EncodeHeaders(f.r, status, &f.h)
	h, f.h = f.h, nil
	return f.responseWriter.WriteHead(status, h, contentLength)
}

func (f *filterWriter) Upgrade(status int, h headers.List) (upstream.Conn, error) {
	u, ok := f.responseWriter.(upgrader)
	if !ok {
		return nil, errors.New("codec cannot upgrade")
	}
	f.chain.EncodeHeaders(f.r, status, &h)
	return u.Upgrade(status, h)
}

// runFilters runs the listener's HTTP filters on req (route may be nil). It
// returns the writer the rest of the request must use, and false when the
// request is finished (a filter answered, or the client went away).
func (s *Server) runFilters(ctx context.Context, req *dsRequest, w responseWriter, hcm *xdsparse.HTTPManager,
	route *xdsparse.Route, path string, client netip.Addr, start time.Time) (responseWriter, bool) {
	chain := hcm.Filters
	fr := &req.fr // zero: the request state's reset cleared it
	fr.Method, fr.Authority, fr.Scheme, fr.Path = req.method, req.authority, req.scheme, path
	fr.Headers, fr.HTTP2, fr.Conn, fr.RemoteIP = &req.header, req.minor == 2, req.conn, client
	fr.Services, fr.Start = s.Services, start
	if route != nil {
		fr.Route = route
	}
	if chain.HasResponseFilters() {
		req.fw = filterWriter{responseWriter: w, chain: chain, r: fr}
		w = &req.fw
	}
	st := chain.DecodeHeaders(ctx, fr)
	if st == filter.Continue && chain.NeedsBody() {
		st = s.filterBody(ctx, req, fr, chain)
	}
	s.countFlags(fr.Flags)
	if st == filter.Continue {
		return w, true
	}
	if fr.Reply.Status != 0 {
		s.localReply(w, fr.Reply.Status, fr.Reply.Body, fr.Reply.Flag, fr.Reply.Headers)
	} else {
		w.Abort()
	}
	return w, false
}

// filterMemo remembers whether the last request's filter chain was idle on
// its route (filter.Chain.IdleOn): consecutive requests on a keep-alive
// connection almost always have the same chain and route, both immutable.
type filterMemo struct {
	chain *filter.Chain
	route *xdsparse.Route
	idle  bool
}

// idleOn reports whether chain leaves every request on route (nil: never
// idle) and its response alone, so that runFilters may be skipped.
func (m *filterMemo) idleOn(chain *filter.Chain, route *xdsparse.Route) bool {
	if route == nil {
		return false
	}
	if m.chain != chain || m.route != route {
		m.chain, m.route, m.idle = chain, route, chain.IdleOn(route)
	}
	return m.idle
}

// filterBody buffers the request body (up to BufferLimit) for the filters
// that read it, then puts it back in front of the rest of the body.
func (s *Server) filterBody(ctx context.Context, req *dsRequest, fr *filter.Request, chain *filter.Chain) filter.Status {
	hasBody := req.chunked || req.contentLength > 0 || req.minor == 2 && req.body != nil && req.contentLength != 0
	if !hasBody {
		return chain.DecodeBody(ctx, fr, nil, true)
	}
	if req.onBodyRead != nil {
		req.onBodyRead()
		req.onBodyRead = nil
	}
	limit := s.BufferLimit
	if req.contentLength >= 0 && req.contentLength <= int64(limit) {
		limit = int(req.contentLength)
	}
	data, complete, err := readLimited(req.body, limit, nil) // the filters may keep it
	if err != nil {
		if errors.As(err, new(*http1.Error)) {
			return fr.LocalReply(400, "malformed request body", "")
		}
		return filter.Stop
	}
	st := chain.DecodeBody(ctx, fr, data, complete)
	if complete {
		req.body, req.contentLength, req.chunked = bytes.NewReader(data), int64(len(data)), false
	} else {
		req.body = bufferedBody{io.MultiReader(bytes.NewReader(data), req.body), req.body}
	}
	return st
}

// bufferedBody is a request body whose start the filters buffered: it reads
// that, then the rest, and passes StopBody on to the rest (an io.MultiReader
// would hide it, and an upstream HTTP/2 exchange that ends early could then
// still read the downstream stream after it is recycled).
type bufferedBody struct {
	io.Reader
	rest io.Reader
}

func (b bufferedBody) StopBody() { stopBody(b.rest) }

func (s *Server) countFlags(f filter.Flags) {
	if f&filter.FlagFaultDelay != 0 {
		s.Stats.FaultDelay.Add(1)
	}
	if f&filter.FlagFaultAbort != 0 {
		s.Stats.FaultAbort.Add(1)
	}
	if f&filter.FlagRBACDenied != 0 {
		s.Stats.RBACDenied.Add(1)
	}
	if f&(filter.FlagExtAuthzDenied|filter.FlagExtAuthzError) != 0 {
		s.Stats.ExtAuthzDenied.Add(1)
	}
}

type followKey struct{}

// WithFollow returns a context for ServeConn under which every request
// uses the HTTP connection manager follow returns (the connection's chain
// in the listener's current configuration; nil when it is gone) instead of
// the one the connection was accepted under.
func WithFollow(ctx context.Context, follow func() *xdsparse.HTTPManager) context.Context {
	return context.WithValue(ctx, followKey{}, follow)
}
