package httpproxy

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/http1"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// forward sends the request to the route's cluster with timeouts and
// retries and streams the response back.
func (s *Server) forward(ctx context.Context, req *dsRequest, w responseWriter, hcm *xdsparse.HTTPManager,
	table *xdsparse.RouteTable, route *xdsparse.Route, path string, start time.Time) {
	var done forwardDone
	defer done.run()
	act := route.Action
	cfg := s.cfg.Load()
	name := act.Cluster
	var wc *xdsparse.WeightedCluster
	if len(act.Weighted) > 0 {
		n := rand.Uint32N(act.TotalWeight)
		for i := range act.Weighted {
			if n < act.Weighted[i].Weight {
				wc = &act.Weighted[i]
				break
			}
			n -= act.Weighted[i].Weight
		}
		name = wc.Name
	}
	req.tel.rec.UpstreamCluster = name
	rs := s.Stats.Routes.For(route)
	var cl *upstream.Cluster
	if cfg != nil {
		cl = req.route.clusterFor(cfg, name)
	}
	if cl == nil {
		s.localReply(w, 503, "cluster not found", flagNoCluster, nil)
		return
	}
	if cl.Cfg != nil {
		req.tel.rec.ClusterServices = cl.Cfg.Services
	}
	if req.method == "CONNECT" {
		s.connect(ctx, req, w, hcm, act, cl)
		return
	}
	// Build the upstream request once; attempts reuse it. It lives in
	// the pooled request state: nothing keeps it once forward returns
	// (mirrors and hedged tries copy what they keep).
	up := &req.up
	*up = upstream.Request{Method: req.method, Scheme: req.scheme, Authority: req.authority, Header: req.header, ContentLength: -1,
		DownstreamHTTP2: req.minor == 2}
	up.Path = rewritePath(route, path)
	if act.HostRewrite != "" {
		up.Authority = act.HostRewrite
	}
	// The levels with header operations, most specific first: most
	// routes have none, and then neither side applies any.
	ops := make([]*xdsparse.HeaderOps, 0, 4)
	if wc != nil {
		ops = appendOps(ops, &wc.HeaderOps)
	}
	ops = appendOps(appendOps(appendOps(ops, &route.HeaderOps), &route.VHost.Headers), &table.Headers)
	vars := &opVars{req: req, start: start, route: route}
	if len(ops) > 0 {
		applyRequestOps(&up.Header, ops, &up.Authority, vars)
	}
	done.req, done.up = req, up // the grown list goes back to the connection (serveOne)
	up.Header.Del("expect")
	if req.upgrade != "" {
		up.Upgrade = req.upgrade
		up.Header.Add("connection", "upgrade")
		up.Header.Add("upgrade", req.upgrade)
	}

	// Read the body: small bodies are buffered (so retries can replay them and
	// bad framing is refused before anything reaches the upstream).
	hasBody := req.chunked || req.contentLength > 0
	if req.minor == 2 {
		hasBody = req.body != nil && req.contentLength != 0
	}
	if hasBody && req.minor == 2 && req.contentLength < 0 {
		// An HTTP/2 body of unknown length (gRPC, streamed uploads) streams
		// from the first byte: the client may wait for response messages
		// before it sends more (bidirectional streaming), so nothing may
		// wait for the body to end. Such requests are not retried.
		up.BodyStream = req.body
	} else if hasBody {
		if req.onBodyRead != nil {
			req.onBodyRead()
		}
		if data, ok := takeBuffered(req.body, s.BufferLimit); ok {
			// The whole body came with the head: sent from the connection's
			// read buffer, which nothing reads again before forward returns
			// (mirrors and hedged tries copy it).
			up.Body = data
		} else if !s.readBody(req, up, w) {
			return
		}
	} else if req.contentLength == 0 {
		up.Body = []byte{}
	}

	// The route timeout bounds all attempts and the response body: it is
	// a deadline of the upstream exchanges (no timer, no context).
	timeout := routeTimeout(act, req)
	var routeBy time.Time
	if timeout > 0 {
		routeBy = time.Now().Add(timeout)
	}
	// expired: the route timeout passed, or the stream ended.
	expired := func() bool {
		return ctx.Err() != nil || (timeout > 0 && !time.Now().Before(routeBy))
	}
	if len(act.Mirrors) > 0 {
		s.mirror(cfg, act, up, timeout)
	}
	rp := act.Retry
	maxAttempts := 1
	if rp != nil && up.Replayable() && up.Upgrade == "" {
		maxAttempts = 1 + rp.NumRetries
	}
	var hash uint64
	hasHash := false
	setCookie := ""
	if len(act.Hash) > 0 {
		hash, hasHash, setCookie = computeHash(act.Hash, req, path)
	}
	var triedBuf [4]*upstream.Host
	tried := triedBuf[:0]
	// triedLevels are the priorities attempts went to; skipLevels those
	// left out of the priority load (retry previous_priorities).
	var triedLevels, skipLevels uint64
	var lastErr error
	var resp *upstream.Response
	var respHost *upstream.Host
	cl.NoteRequest()
	// canRetry asks the cluster's retry breaker (max_retries or the
	// retry budget) for one more attempt.
	canRetry := func(attempt int) bool {
		if attempt >= maxAttempts {
			return false
		}
		if uint64(cl.Stats.RetriesActive.Load()) >= cl.RetryLimit() {
			cl.Stats.RqRetryOverflow.Add(1)
			return false
		}
		return true
	}
	done.cl = cl
	noteRetry := func() {
		s.Stats.RqRetry.Add(1)
		cl.Stats.RqRetry.Add(1)
		if rs != nil {
			rs.RqRetry.Add(1)
		}
		if !done.retrying {
			done.retrying = true
			cl.Stats.RetriesActive.Add(1)
		}
	}
	var winnerCancel context.CancelFunc
	if cl.Cfg.Type != xdsparse.OriginalDst && hedgeable(act, up, maxAttempts) {
		resp, respHost, winnerCancel, lastErr, tried = s.hedged(ctx, cl, up, act, routeBy, timeout,
			upstream.PickOptions{Hash: hash, HasHash: hasHash}, canRetry, noteRetry)
		maxAttempts = 0 // no plain attempts
		if respHost != nil {
			req.tel.rec.UpstreamHost = respHost.Addr
		}
	}
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if attempt > 1 {
			noteRetry()
			if !sleepBackoff(ctx, routeBy, rp, attempt-2) {
				break
			}
		}
		if uint32(cl.Stats.RqActive.Load()) >= cl.Cfg.MaxRequests {
			cl.Stats.RqPendingOverflow.Add(1)
			lastErr = upstream.ErrOverflow
			break
		}
		var host *upstream.Host
		if cl.Cfg.Type == xdsparse.OriginalDst {
			host = s.mgr.OriginalDstHost(cl, originalDstAddr(req))
		} else {
			if f := priorityUpdateFrequency(rp); f > 0 && attempt > f && (attempt-1)%f == 0 {
				skipLevels = triedLevels
			}
			po := upstream.PickOptions{Hash: hash, HasHash: hasHash, SkipLevels: skipLevels}
			if rp != nil && rp.PreviousHosts && len(tried) > 0 {
				ex := append([]*upstream.Host(nil), tried...) // a copy, so that tried stays on the stack
				po.Exclude = func(h *upstream.Host) bool {
					for _, t := range ex {
						if t == h {
							return true
						}
					}
					return false
				}
				po.Attempts = max(rp.HostSelectionMax, 3)
			}
			host = cl.Pick(po)
			if host != nil && priorityUpdateFrequency(rp) > 0 {
				if l := cl.LevelOf(host); l >= 0 && l < 64 {
					triedLevels |= 1 << l
				}
			}
		}
		if host == nil {
			lastErr = upstream.ErrNoHealthy
			break
		}
		tried = append(tried, host)
		req.tel.rec.UpstreamHost = host.Addr
		if act.AutoHost {
			up.Authority = host.Addr
		}
		up.Header.Set("x-envoy-attempt-count", strconv.Itoa(attempt))
		if timeout > 0 {
			up.Header.Set("x-envoy-expected-rq-timeout-ms", s.timeoutMs.format(timeout.Milliseconds()))
		}
		up.Deadline = routeBy
		perTry := false
		if rp != nil && rp.PerTryTimeout > 0 {
			if by := time.Now().Add(rp.PerTryTimeout); routeBy.IsZero() || by.Before(routeBy) {
				up.Deadline = by
			}
			perTry = true
		}
		cl.Stats.RqActive.Add(1)
		host.Active.Add(1)
		cl.Stats.RqTotal.Add(1)
		if rs != nil {
			rs.RqTotal.Add(1)
		}
		var tryStart time.Time // timed only for latency-based ejection
		if cl.TracksLatency() {
			tryStart = time.Now()
		}
		r, err := host.RoundTrip(ctx, up)
		if err == nil && !tryStart.IsZero() {
			cl.ReportLatency(host, time.Since(tryStart))
		}
		// Outlier detection: the host's answer, or its local failure
		// (connect error, reset, timeout); not a breaker's overflow or a
		// client that went away.
		switch {
		case err == nil:
			cl.ReportResult(host, r.Status, nil)
		case errors.Is(err, upstream.ErrOverflow), errors.Is(ctx.Err(), context.Canceled):
		default:
			cl.ReportResult(host, 0, err)
		}
		if err != nil {
			host.Active.Add(-1)
			cl.Stats.RqActive.Add(-1)
			if errors.Is(err, upstream.ErrTimeout) {
				cl.Stats.RqTimeout.Add(1)
				if rs != nil {
					rs.RqTimeout.Add(1)
				}
				if expired() || !perTry {
					lastErr = err
					break
				}
			}
			lastErr = err
			if retriableErr(rp, err) && !expired() && canRetry(attempt) {
				continue
			}
			break
		}
		countClass(cl.Stats, r.Status)
		rs.countClass(r.Status)
		if retriableStatus(rp, r.Status, r.Header) && canRetry(attempt) {
			r.Body.Close()
			host.Active.Add(-1)
			cl.Stats.RqActive.Add(-1)
			lastErr = nil
			continue
		}
		resp, respHost = r, host
		break
	}
	if resp == nil {
		if errors.Is(lastErr, upstream.ErrConnect) {
			req.tel.rec.UpstreamFailure = connectCause(lastErr)
		}
		s.failure(w, lastErr, ctx, timeout > 0 && !time.Now().Before(routeBy), len(tried) > 1)
		return
	}
	// The response is the connection's until its body is closed; then the
	// host's and cluster's active counts drop (no wrapper, no allocation).
	done.resp, done.respHost, done.winnerCancel = resp, respHost, winnerCancel
	h := resp.Header
	h.Set("x-envoy-upstream-service-time", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	if setCookie != "" {
		h.Add("set-cookie", setCookie)
	}
	vars.status, vars.respHeader, vars.upstream, vars.cluster = resp.Status, h, respHost.Addr, name
	if len(ops) > 0 {
		applyResponseOps(&h, ops, vars)
	}
	if resp.Upgraded != nil {
		s.countStatus(resp.Status)
		u, ok := w.(upgrader)
		if !ok {
			resp.Upgraded.Close()
			w.Abort()
			return
		}
		down, err := u.Upgrade(resp.Status, h)
		if err != nil {
			resp.Upgraded.Close()
			return
		}
		s.Stats.Upgrades.Add(1)
		s.splice(ctx, down, resp.Upgraded, idleTimeout(hcm, act))
		return
	}
	s.countStatus(resp.Status)
	if err := w.WriteHead(resp.Status, h, resp.ContentLength); err != nil {
		w.Abort()
		return
	}
	if err := s.sendBody(w, resp); err != nil {
		w.Abort()
		return
	}
	var tr headers.List
	if resp.Trailers != nil {
		tr = resp.Trailers()
	}
	if err := w.Finish(tr); err != nil {
		w.Abort()
	}
}

// readBody reads the request body into the pooled state's buffer, or its
// first limit bytes when it is longer (then up streams the rest and cannot
// be retried). It reports false when the body failed, after answering.
func (s *Server) readBody(req *dsRequest, up *upstream.Request, w responseWriter) bool {
	limit := s.BufferLimit
	if req.contentLength >= 0 && req.contentLength <= int64(limit) {
		limit = int(req.contentLength)
	}
	data, complete, err := readLimited(req.body, limit, req.bodyBuf)
	if cap(data) <= maxKeptBody {
		req.bodyBuf = data[:0] // the buffer of the next request served with this state
	}
	if err != nil {
		if status, msg, ok := timeoutStatus(err); ok && !w.Started() {
			s.localReply(w, status, msg, "", nil)
			return false
		}
		if errors.As(err, new(*http1.Error)) {
			s.Stats.RqRejected.Add(1)
			s.localReply(w, 400, "malformed request body", "", nil)
		}
		w.Abort()
		return false
	}
	if complete {
		up.Body = data
		if up.Body == nil {
			up.Body = []byte{}
		}
	} else {
		up.BodyStream = io.MultiReader(strings.NewReader(string(data)), req.body)
		up.ContentLength = req.contentLength
	}
	return true
}

// forwardDone is what forward undoes as it returns, in one deferred call:
// forward has too many returns for three defers to be open-coded (each
// would cost a defer record and runtime.deferreturn's walk per request).
// run undoes in the order the defers did: the response, the retry count,
// the header list.
type forwardDone struct {
	req *dsRequest
	// up, once built, holds the request's grown header list, which goes
	// back to the connection (serveOne).
	up           *upstream.Request
	cl           *upstream.Cluster
	retrying     bool // the request counts in the cluster's active retries
	resp         *upstream.Response
	respHost     *upstream.Host
	winnerCancel context.CancelFunc
}

func (d *forwardDone) run() {
	if d.resp != nil {
		d.resp.Body.Close()
		d.respHost.Active.Add(-1)
		d.cl.Stats.RqActive.Add(-1)
		if d.winnerCancel != nil {
			d.winnerCancel()
		}
	}
	if d.retrying {
		d.cl.Stats.RetriesActive.Add(-1)
	}
	if d.up != nil {
		d.req.header = d.up.Header
	}
}

// failure turns an upstream error into Envoy's local reply.
// routeExpired says the route timeout passed; retried says the request was
// tried more than once: the retry policy is exhausted (Envoy's URX).
func (s *Server) failure(w responseWriter, err error, ctx context.Context, routeExpired, retried bool) {
	urx := ""
	if retried {
		urx = "," + flagRetryExhausted
	}
	if status, msg, ok := timeoutStatus(streamCause(ctx)); ok {
		s.localReply(w, status, msg, "", nil)
		return
	}
	switch {
	case err == nil:
		s.localReply(w, 503, "upstream connect error or disconnect/reset before headers", flagReset, nil)
	case errors.Is(err, upstream.ErrTimeout):
		s.Stats.RqTimeout.Add(1)
		s.localReply(w, 504, "upstream request timeout", flagTimeout, nil)
	case errors.Is(err, upstream.ErrNoHealthy):
		s.localReply(w, 503, "no healthy upstream", flagNoHealthy, nil)
	case errors.Is(err, upstream.ErrOverflow):
		s.localReply(w, 503, "upstream connect error or disconnect/reset before headers. reset reason: overflow", flagOverflow,
			headers.List{{Name: "x-envoy-overloaded", Value: "true"}})
	case errors.Is(err, upstream.ErrConnect):
		s.localReply(w, 503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure", flagConnectFailure+urx, nil)
	case errors.Is(err, upstream.ErrProtocol):
		s.localReply(w, 502, "upstream protocol error", flagProtocol, nil)
	default:
		if routeExpired || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			s.localReply(w, 504, "upstream request timeout", flagTimeout, nil)
			return
		}
		s.localReply(w, 503, "upstream connect error or disconnect/reset before headers. reset reason: connection termination", flagReset, nil)
	}
}

// connectCause is the reason a connection failed, without the address
// (the access log has it as the upstream host): "connection refused".
func connectCause(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// readyBody is a body that tells whether a Read would return at once.
type readyBody interface{ Ready() bool }

// sendBody forwards the response body: one that came whole with the head
// from the upstream connection's read buffer (not read again before the
// body is closed; Finish sends it with the end of the stream), any other
// through a pooled buffer.
func (s *Server) sendBody(w responseWriter, resp *upstream.Response) error {
	if data, ok := takeBuffered(resp.Body, 16*1024); ok {
		_, err := w.Write(data)
		return err
	}
	buf, _ := s.bufs.Get().(*[16 * 1024]byte)
	if buf == nil {
		buf = new([16 * 1024]byte)
	}
	err := copyBody(w, resp.Body, buf[:], resp.ContentLength)
	s.bufs.Put(buf)
	return err
}

// copyBody forwards a response body of length bytes (-1: unknown).
func copyBody(w responseWriter, r io.Reader, buf []byte, length int64) error {
	// The head goes out at once when the body has nothing yet, as Envoy's
	// does: a streaming client may wait for it before it sends the
	// messages the body answers (a gRPC client's Header()), and a
	// server-streaming answer's first message may be long in coming.
	if rb, ok := r.(readyBody); ok && !rb.Ready() {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	for {
		n, err := r.Read(buf[:])
		if n > 0 {
			length -= int64(n)
			// Flush when the upstream has nothing more right now, so
			// streamed responses are not held back; not after the last
			// byte of a known length: Finish sends it with the end of the
			// stream, in one write (HTTP/2: no separate END_STREAM).
			var werr error
			if err == nil && length != 0 {
				_, werr = w.WriteFlush(buf[:n])
			} else {
				_, werr = w.Write(buf[:n])
			}
			if werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// maxKeptBody is the largest body buffer a request's pooled state keeps
// for the next request.
const maxKeptBody = 8 * 1024

// readLimited reads r to its end, or limit bytes and one more when there
// are more (complete false), into buf's backing array when it is large
// enough; the data never aliases anything but buf or a new array.
func readLimited(r io.Reader, limit int, buf []byte) ([]byte, bool, error) {
	if b, ok := r.(*http1.Body); ok {
		return http1.ReadAllLimit(b, limit, buf[:0])
	}
	// Room for the limit and the byte past it: a body of known length
	// ends with a read at the limit that sees EOF.
	want := min(limit, 4096) + 1
	if cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	buf = buf[:0]
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(limit-len(buf), len(buf))+1)
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	// At the limit: see whether anything follows.
	if len(buf) == cap(buf) {
		buf = slices.Grow(buf, 1)
	}
	n, err := r.Read(buf[len(buf) : len(buf)+1])
	if n == 0 && err == io.EOF {
		return buf, true, nil
	}
	if n > 0 {
		return buf[:len(buf)+1], false, nil
	}
	return buf, false, err
}

func rewritePath(r *xdsparse.Route, path string) string {
	a := r.Action
	if a.PrefixRewrite == "" && a.RegexRewrite == nil {
		return path
	}
	p, q, hasQ := strings.Cut(path, "?")
	switch {
	case a.RegexRewrite != nil:
		p = a.RegexRewrite.ReplaceAllString(p, a.RegexSubst)
	case r.Kind == xdsparse.PathPrefix || r.Kind == xdsparse.PathSeparatedPrefix:
		p = a.PrefixRewrite + p[len(r.Path):]
	default:
		p = a.PrefixRewrite
	}
	if p == "" {
		p = "/"
	}
	if hasQ {
		return p + "?" + q
	}
	return p
}

func countClass(st *upstream.Stats, status int) {
	switch status / 100 {
	case 2:
		st.Rq2xx.Add(1)
	case 3:
		st.Rq3xx.Add(1)
	case 4:
		st.Rq4xx.Add(1)
	case 5:
		st.Rq5xx.Add(1)
	}
}

// msStrings remembers the decimal strings of a few route timeouts, so that
// x-envoy-expected-rq-timeout-ms costs no allocation per request: a
// direct-mapped cache of immutable entries.
type msStrings [8]atomic.Pointer[msString]

type msString struct {
	ms int64
	s  string
}

func (c *msStrings) format(ms int64) string {
	slot := &c[uint64(ms)%uint64(len(c))]
	if e := slot.Load(); e != nil && e.ms == ms {
		return e.s
	}
	e := &msString{ms: ms, s: strconv.FormatInt(ms, 10)}
	slot.Store(e)
	return e.s
}
