package httpproxy

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
	"github.com/mast-mesh/mast/internal/telemetry/peer"
	"github.com/mast-mesh/mast/internal/telemetry/reporter"
)

// Telemetry is what the server reports finished requests to (metrics,
// access logs) and exchanges peer metadata with.
type Telemetry = reporter.Reporter

var errUpgrade = errors.New("codec cannot upgrade")

// telState is a request's telemetry, kept in the dsRequest so that it costs
// no allocation.
type telState struct {
	rec    telemetry.Record
	w      telWriter
	body   countReader
	finish bool
	route  *xdsparse.Route
	// respHdr is this request's copy of the response head: the list the
	// writer is given may belong to a pooled upstream connection, which
	// another request reuses as soon as this response is forwarded.
	respHdr headers.List
	// trace is the request's tracing (tracing.go).
	trace traceState
	// grpc says the request is gRPC; msgs counts its messages.
	grpc bool
	msgs grpcStats
	// memo is kept across requests with the state (reset keeps it).
	memo telMemo
}

// telMemo is what a request state's telemetry remembers of the last
// request: consecutive requests on a connection come from the same peer
// and are mostly reported in the same series.
type telMemo struct {
	// peers is the last peer the metadata exchange named: requests from a
	// peer and responses from one carry the same value every time.
	peers peer.Memo
	// series is the last metric series reported (allocated with the
	// state's first report).
	series *metrics.SeriesMemo
	// principal is the SPIFFE ID of the upstream peer principalOf (nil
	// and "" at first): a peer the exchange names is not changed
	// (Reporter.PeerPrincipal), nor is the server's reporter.
	principalOf *telemetry.Peer
	principal   string
}

// countReader counts the request body bytes read (and, for gRPC, the
// messages).
type countReader struct {
	r      io.Reader
	n      int64
	frames *grpcFrames
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.frames != nil && n > 0 {
		c.frames.feed(p[:n])
	}
	return n, err
}

// TryRead passes on the body's TryRead (h2client.ReadyReader), counting
// what it took; a body without TryRead offers nothing.
func (c *countReader) TryRead(p []byte) (int, bool, error) {
	rr, ok := c.r.(readyReader)
	if !ok {
		return 0, false, nil
	}
	n, done, err := rr.TryRead(p)
	c.n += int64(n)
	if c.frames != nil && n > 0 {
		c.frames.feed(p[:n])
	}
	return n, done, err
}

// StopBody passes on h2client's BodyStopper.
func (c *countReader) StopBody() { stopBody(c.r) }

// TakeBuffered passes on the body's TakeBuffered (bufferedTaker), counting
// what it took.
func (c *countReader) TakeBuffered(max int) ([]byte, bool) {
	data, ok := takeBuffered(c.r, max)
	if ok {
		c.n += int64(len(data))
		if c.frames != nil && len(data) > 0 {
			c.frames.feed(data)
		}
	}
	return data, ok
}

// telWriter records the response head, flags and bytes, and does the
// response side of the metadata exchange.
type telWriter struct {
	responseWriter
	s   *Server
	req *dsRequest
	hcm *xdsparse.HTTPManager
	// h holds the head being written: head takes its address, which for
	// a parameter would move the list to the heap on every response.
	h headers.List
}

func (t *telWriter) WriteHead(status int, h headers.List, contentLength int64) error {
	t.h = h
	t.head(status, &t.h)
	h, t.h = t.h, nil
	return t.responseWriter.WriteHead(status, h, contentLength)
}

func (t *telWriter) head(status int, h *headers.List) {
	rec := &t.req.tel.rec
	rec.ResponseCode = status
	if v, ok := h.Get("x-mast-response-flags"); ok {
		for _, code := range strings.Split(v, ",") {
			if f, ok := telemetry.ParseFlag(code); ok {
				rec.Flags |= f
			}
		}
	}
	if t.hcm.Inbound {
		// Answer a mesh peer with this workload's metadata.
		if rec.DownstreamPeer != nil {
			t.s.Telemetry.AddSelf(h)
		}
	} else {
		m := &t.req.tel.memo
		rec.UpstreamPeer = t.s.Telemetry.TakePeer(h, &m.peers)
		if p := rec.UpstreamPeer; p != m.principalOf {
			m.principalOf, m.principal = p, t.s.Telemetry.PeerPrincipal(p)
		}
		rec.UpstreamPrincipal = m.principal
	}
	if v, ok := h.Get("grpc-status"); ok {
		rec.GRPCStatus = v
	}
	ts := &t.req.tel
	ts.respHdr = append(ts.respHdr[:0], (*h)...)
	rec.ResponseHeaders = ts.respHdr
	if ts.grpc {
		// Both peers are known now: report the stream's messages as it
		// goes, every reporting interval.
		ts.msgs.start(t.s.Telemetry.GRPCMessages(rec))
	}
}

func (t *telWriter) Write(p []byte) (int, error) {
	n, err := t.responseWriter.Write(p)
	t.sent(p[:n])
	return n, err
}

func (t *telWriter) WriteFlush(p []byte) (int, error) {
	n, err := t.responseWriter.WriteFlush(p)
	t.sent(p[:n])
	return n, err
}

// sent counts body bytes written, and the gRPC messages they carry.
func (t *telWriter) sent(p []byte) {
	ts := &t.req.tel
	ts.rec.BytesSent += int64(len(p))
	if ts.grpc && len(p) > 0 {
		ts.msgs.resp.feed(p)
	}
}

func (t *telWriter) Finish(trailers headers.List) error {
	if v, ok := trailers.Get("grpc-status"); ok {
		t.req.tel.rec.GRPCStatus = v
	}
	err := t.responseWriter.Finish(trailers)
	t.req.tel.finish = err == nil
	return err
}

func (t *telWriter) Upgrade(status int, h headers.List) (upstream.Conn, error) {
	u, ok := t.responseWriter.(upgrader)
	if !ok {
		return nil, errUpgrade
	}
	t.h = h
	t.head(status, &t.h)
	h, t.h = t.h, nil
	t.req.tel.finish = true
	return u.Upgrade(status, h)
}

// startTelemetry prepares req's record and returns the writer the request
// must answer through. On inbound listeners the peer's metadata is taken
// from the request; elsewhere a client's copy is removed.
func (s *Server) startTelemetry(req *dsRequest, w responseWriter, hcm *xdsparse.HTTPManager, start time.Time) responseWriter {
	ts := &req.tel
	// The record is zero: a request's state is new or was reset after
	// its last request (dsRequest.reset). Only the fields known now are
	// stored, in one statement (one write-barrier check for their
	// pointers), not a whole record built and copied.
	rec := &ts.rec
	rec.Start, rec.Outbound, rec.Method, rec.Path, rec.DownstreamRemote, rec.RequestHeaders, rec.Protocol, rec.DownstreamLocal =
		start, !hcm.Inbound, req.method, req.target, req.remoteAddr, req.header, protocolName(req.minor), req.localString()
	if req.peer != nil {
		ts.rec.DownstreamMTLS = true
		if len(req.peer.uris) > 0 {
			ts.rec.DownstreamPrincipal = req.peer.uris[0]
		}
	}
	if hcm.Inbound {
		ts.rec.DownstreamPeer = s.Telemetry.TakePeer(&req.header, &ts.memo.peers)
	} else {
		reporter.StripPeerHeaders(&req.header)
	}
	ct, _ := req.header.Get("content-type")
	ts.grpc = isGRPC(ct)
	if ts.grpc {
		ts.msgs.reset()
	}
	if req.body != nil {
		ts.body = countReader{r: req.body}
		if ts.grpc {
			ts.body.frames = &ts.msgs.req
		}
		req.body = &ts.body
	}
	ts.w = telWriter{responseWriter: w, s: s, req: req, hcm: hcm}
	return &ts.w
}

// toUpstream adds this proxy's metadata to a request bound for a mesh
// service (outbound listeners and gateways only).
func (s *Server) toUpstream(req *dsRequest, hcm *xdsparse.HTTPManager, act *xdsparse.RouteAction) {
	if s.Telemetry == nil || hcm.Inbound || act == nil {
		return
	}
	if reporter.IsMeshCluster(routeCluster(act)) {
		s.Telemetry.AddSelf(&req.header)
	}
}

// routeCluster is the route's cluster (the first of weighted ones: they
// name the same service's subsets).
func routeCluster(act *xdsparse.RouteAction) string {
	if act.Cluster == "" && len(act.Weighted) > 0 {
		return act.Weighted[0].Name
	}
	return act.Cluster
}

// endTelemetry completes req's record and reports it.
func (s *Server) endTelemetry(ctx context.Context, req *dsRequest, hcm *xdsparse.HTTPManager) {
	ts := &req.tel
	route := ts.route
	rec := &ts.rec
	rec.Duration = time.Since(rec.Start)
	rec.Authority = req.authority
	rec.RequestHeaders = req.header
	rec.BytesReceived = ts.body.n
	if route != nil {
		rec.RouteName = route.Name
	}
	rec.Flags |= filterFlags(req.fr.Flags)
	if !ts.finish && ctx.Err() != nil {
		rec.Flags |= telemetry.DownstreamConnectionTermination
	}
	if v, ok := rec.ResponseHeaders.Get("x-envoy-upstream-service-time"); ok && v != "" {
		rec.UpstreamServiceTime = serviceTime(v)
	}
	rec.ResponseDetails = req.fr.Details
	if rec.ResponseDetails == "" {
		rec.ResponseDetails = responseDetails(rec)
	}
	if ts.grpc {
		if !ts.msgs.started() {
			ts.msgs.start(s.Telemetry.GRPCMessages(rec)) // no response head: report at the end
		}
		ts.msgs.end()
	}
	if ts.memo.series == nil {
		ts.memo.series = new(metrics.SeriesMemo)
	}
	s.Telemetry.RequestDone(rec, hcm.AccessLogs, ts.memo.series)
	s.endTrace(req, hcm, rec)
	// Drop references to this request's buffers.
	ts.rec.RequestHeaders, ts.rec.ResponseHeaders, ts.body.r, ts.body.frames, ts.route = nil, nil, nil, nil, nil
	clear(ts.respHdr)
	ts.respHdr = ts.respHdr[:0]
}

// serviceTime reads x-envoy-upstream-service-time (whole milliseconds, as
// the router writes it; a fraction is read too) without allocating for
// the usual integer; 0 when it is not a number. Up to 18 digits are read
// here (they cannot overflow): strconv's code is some 15 more code lines
// to bring into the instruction cache on every response.
func serviceTime(v string) time.Duration {
	if len(v) > 0 && len(v) <= 18 {
		ms := int64(0)
		for i := 0; i < len(v) && ms >= 0; i++ {
			if c := v[i]; c >= '0' && c <= '9' {
				ms = ms*10 + int64(c-'0')
			} else {
				ms = -1
			}
		}
		if ms >= 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(ms) * time.Millisecond
	}
	if d, err := time.ParseDuration(v + "ms"); err == nil {
		return d
	}
	return 0
}

// filterFlags maps the flags the filters recorded to Envoy's.
func filterFlags(f filter.Flags) telemetry.Flags {
	var out telemetry.Flags
	if f&filter.FlagFaultAbort != 0 {
		out |= telemetry.FaultInjected
	}
	if f&filter.FlagFaultDelay != 0 {
		out |= telemetry.DelayInjected
	}
	if f&(filter.FlagExtAuthzDenied|filter.FlagExtAuthzError) != 0 {
		out |= telemetry.UnauthorizedExternalService
	}
	if f&filter.FlagRateLimited != 0 {
		out |= telemetry.RateLimited
	}
	return out
}

// responseDetails is Envoy's %RESPONSE_CODE_DETAILS% for the common cases.
func responseDetails(rec *telemetry.Record) string {
	switch {
	case rec.Flags&telemetry.FaultInjected != 0:
		return "fault_filter_abort"
	case rec.Flags&telemetry.NoRouteFound != 0:
		return "route_not_found"
	case rec.Flags&telemetry.NoClusterFound != 0:
		return "cluster_not_found"
	case rec.Flags&telemetry.NoHealthyUpstream != 0:
		return "no_healthy_upstream"
	case rec.Flags&telemetry.UpstreamRequestTimeout != 0:
		return "response_timeout"
	case rec.Flags&telemetry.UpstreamOverflow != 0:
		return "upstream_reset_before_response_started{overflow}"
	case rec.Flags&telemetry.UpstreamConnectionFailure != 0:
		if rec.UpstreamFailure != "" {
			// Envoy's form: the cause after a comma, spaces as underscores.
			return "upstream_reset_before_response_started{connection_failure," + strings.ReplaceAll(rec.UpstreamFailure, " ", "_") + "}"
		}
		return "upstream_reset_before_response_started{connection_failure}"
	case rec.Flags&telemetry.UpstreamConnectionTermination != 0:
		return "upstream_reset_before_response_started{connection_termination}"
	case rec.Flags&telemetry.DownstreamConnectionTermination != 0:
		return "downstream_remote_disconnect"
	case rec.UpstreamHost != "" && rec.ResponseCode != 0:
		return "via_upstream"
	}
	return ""
}
