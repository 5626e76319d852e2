package httpproxy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// mirror sends a copy of up to each of the route's mirror clusters that the
// request is sampled for (request_mirror_policies), as Envoy's shadow
// writer does: the copy's authority gets "-shadow" appended to its host,
// it goes out once, whatever the primary's retries, with the route's
// timeout, and its answer is read and discarded. Nothing here waits for
// it: the primary request and its response never depend on a copy.
//
// A request whose body streams (larger than the buffer limit, or an
// HTTP/2 body of unknown length) is not copied: reading it twice would
// make the primary wait for the copy. It counts as MirrorSkipped.
func (s *Server) mirror(cfg *Config, act *xdsparse.RouteAction, up *upstream.Request, timeout time.Duration) {
	for i := range act.Mirrors {
		mp := &act.Mirrors[i]
		if mp.Numerator < mp.Denominator && rand.Uint32N(mp.Denominator) >= mp.Numerator {
			continue
		}
		if !up.Replayable() || up.Upgrade != "" {
			s.Stats.MirrorSkipped.Add(1)
			continue
		}
		var cl *upstream.Cluster
		if cfg != nil {
			cl = cfg.Clusters[mp.Cluster]
		}
		if cl == nil || cl.Cfg.Type == xdsparse.OriginalDst {
			s.Stats.MirrorSkipped.Add(1)
			continue
		}
		cp := &upstream.Request{Method: up.Method, Scheme: up.Scheme, Authority: shadowHost(up.Authority), Path: up.Path,
			Header: up.Header.Clone(0), Body: bytes.Clone(up.Body), ContentLength: up.ContentLength, DownstreamHTTP2: up.DownstreamHTTP2}
		if mp.Unsampled {
			unsample(&cp.Header)
		}
		s.Stats.Mirrored.Add(1)
		go s.sendMirror(cl, cp, timeout)
	}
}

// sendMirror sends one copy to a host of cl and discards the answer. The
// cluster's request breaker applies to copies as to any request.
func (s *Server) sendMirror(cl *upstream.Cluster, req *upstream.Request, timeout time.Duration) {
	if uint32(cl.Stats.RqActive.Load()) >= cl.Cfg.MaxRequests {
		cl.Stats.RqPendingOverflow.Add(1)
		return
	}
	host := cl.Pick(upstream.PickOptions{})
	if host == nil {
		return
	}
	// A copy ends with the route's timeout, or when the proxy drains.
	ctx := s.drainCtx
	if timeout > 0 {
		req.Deadline = time.Now().Add(timeout)
	}
	cl.Stats.RqActive.Add(1)
	host.Active.Add(1)
	cl.Stats.RqTotal.Add(1)
	defer func() {
		host.Active.Add(-1)
		cl.Stats.RqActive.Add(-1)
	}()
	resp, err := host.RoundTrip(ctx, req)
	if err != nil {
		s.log.Debug("mirror failed", "cluster", cl.Cfg.Name, "host", host.Addr, "error", err)
		return
	}
	countClass(cl.Stats, resp.Status)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// shadowHost appends "-shadow" to the host part of an authority, keeping
// its port: "reviews:9080" becomes "reviews-shadow:9080".
func shadowHost(authority string) string {
	if i := strings.LastIndexByte(authority, ':'); i > 0 && !strings.HasSuffix(authority, "]") {
		return authority[:i] + "-shadow" + authority[i:]
	}
	return authority + "-shadow"
}

// unsample marks the trace context of a copy not sampled (trace_sampled
// false), in each propagation format the request carries.
func unsample(h *headers.List) {
	if _, ok := h.Get("x-b3-sampled"); ok {
		h.Set("x-b3-sampled", "0")
	}
	if v, ok := h.Get("b3"); ok {
		// {TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}
		parts := strings.Split(v, "-")
		if len(parts) >= 3 {
			parts[2] = "0"
			h.Set("b3", strings.Join(parts, "-"))
		}
	}
	if v, ok := h.Get("traceparent"); ok && len(v) == 55 {
		h.Set("traceparent", v[:53]+"00")
	}
}
