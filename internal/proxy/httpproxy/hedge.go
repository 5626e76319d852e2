package httpproxy

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// hedgeable reports whether a request may be hedged: the route asks for it
// (hedge_policy.hedge_on_per_try_timeout) with a per-try timeout and at
// least one retry, the body is buffered, it is no upgrade, and its method is
// idempotent (RFC 9110 9.2.2): two copies of it in flight at once must do
// no more than one would. Other requests keep plain per-try timeouts.
func hedgeable(act *xdsparse.RouteAction, up *upstream.Request, maxAttempts int) bool {
	rp := act.Retry
	if !act.HedgeOnPerTryTimeout || rp == nil || rp.PerTryTimeout <= 0 || maxAttempts < 2 || !up.Replayable() || up.Upgrade != "" {
		return false
	}
	switch up.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// tryResult is one hedged try's outcome.
type tryResult struct {
	host   *upstream.Host
	resp   *upstream.Response
	err    error
	cancel context.CancelFunc
}

// done releases a try that lost or failed: its response, its counts, its
// context.
func (t *tryResult) done(cl *upstream.Cluster) {
	if t.resp != nil {
		t.resp.Body.Close()
	}
	t.host.Active.Add(-1)
	cl.Stats.RqActive.Add(-1)
	t.cancel()
}

// hedgeRun is the state of one hedged request.
type hedgeRun struct {
	ctx      context.Context
	cl       *upstream.Cluster
	up       *upstream.Request
	act      *xdsparse.RouteAction
	routeBy  time.Time
	timeout  time.Duration
	po       upstream.PickOptions
	tried    []*upstream.Host
	results  chan tryResult
	inflight int
}

// launch starts try number n on a host not tried yet (when there is one)
// without waiting for it; false when no host is usable.
func (h *hedgeRun) launch(n int) bool {
	tried := h.tried
	h.po.Exclude = func(x *upstream.Host) bool {
		for _, t := range tried {
			if t == x {
				return true
			}
		}
		return false
	}
	h.po.Attempts = max(h.act.Retry.HostSelectionMax, 3)
	host := h.cl.Pick(h.po)
	if host == nil {
		return false
	}
	h.tried = append(h.tried, host)
	u := *h.up
	u.Header = h.up.Header.Clone(2)
	if h.act.AutoHost {
		u.Authority = host.Addr
	}
	u.Header.Set("x-envoy-attempt-count", strconv.Itoa(n))
	if h.timeout > 0 {
		u.Header.Set("x-envoy-expected-rq-timeout-ms", strconv.FormatInt(h.timeout.Milliseconds(), 10))
	}
	// A try outlives its per-try timeout: only the route timeout ends it.
	u.Deadline = h.routeBy
	ctx, cancel := context.WithCancel(h.ctx)
	h.cl.Stats.RqActive.Add(1)
	host.Active.Add(1)
	h.cl.Stats.RqTotal.Add(1)
	h.inflight++
	go func() {
		start := time.Now()
		r, err := host.RoundTrip(ctx, &u)
		switch {
		case err == nil:
			h.cl.ReportResult(host, r.Status, nil)
		case errors.Is(err, upstream.ErrOverflow), ctx.Err() != nil:
			// refused by a breaker, or cancelled: the host is not to blame
		default:
			h.cl.ReportResult(host, 0, err)
		}
		if err == nil {
			h.cl.ReportLatency(host, time.Since(start))
		}
		h.results <- tryResult{host: host, resp: r, err: err, cancel: cancel}
	}()
	return true
}

// release waits, away from the request, for the tries still in flight
// (cancelled) and releases them.
func (h *hedgeRun) release() {
	if h.inflight == 0 {
		return
	}
	n, results, cl := h.inflight, h.results, h.cl
	go func() {
		for range n {
			t := <-results
			t.done(cl)
		}
	}()
}

// hedged runs the tries of a hedgeable request (Envoy's hedging on per-try
// timeout): when a try passes the per-try timeout, another starts on
// another host while the first goes on; the first answer that the retry
// policy does not retry wins and the others are cancelled. A try that fails
// while another is in flight is dropped (the other is its retry); one that
// fails alone is retried as usual. Every try after the first is a retry:
// it counts against num_retries and the retry breaker (canRetry, noteRetry).
// It returns the winning response and host (the caller releases them) or
// the last error, and the hosts tried.
func (s *Server) hedged(ctx context.Context, cl *upstream.Cluster, up *upstream.Request, act *xdsparse.RouteAction,
	routeBy time.Time, timeout time.Duration, po upstream.PickOptions, canRetry func(int) bool, noteRetry func(),
) (*upstream.Response, *upstream.Host, context.CancelFunc, error, []*upstream.Host) {
	rp := act.Retry
	// Tries outlive the request (cancelled ones finish in the
	// background), but up and its body belong to the request's pooled
	// state: the tries get a copy.
	own := *up
	own.Body = bytes.Clone(up.Body)
	up = &own
	h := &hedgeRun{ctx: ctx, cl: cl, up: up, act: act, routeBy: routeBy, timeout: timeout, po: po,
		results: make(chan tryResult, 1+rp.NumRetries)}
	attempts := 1
	if !h.launch(1) {
		return nil, nil, nil, upstream.ErrNoHealthy, nil
	}
	perTry := time.NewTimer(rp.PerTryTimeout)
	defer perTry.Stop()
	var routeC <-chan time.Time
	if !routeBy.IsZero() {
		t := time.NewTimer(time.Until(routeBy))
		defer t.Stop()
		routeC = t.C
	}
	for {
		select {
		case <-perTry.C:
			cl.Stats.RqPerTryTimeout.Add(1)
			if canRetry(attempts) {
				noteRetry()
				attempts++
				if h.launch(attempts) {
					cl.Stats.RqHedged.Add(1)
					perTry.Reset(rp.PerTryTimeout)
				}
			}
		case <-routeC:
			h.release()
			return nil, nil, nil, upstream.ErrTimeout, h.tried
		case <-ctx.Done():
			h.release()
			return nil, nil, nil, ctx.Err(), h.tried
		case t := <-h.results:
			h.inflight--
			if t.err == nil {
				countClass(cl.Stats, t.resp.Status)
				if !retriableStatus(rp, t.resp.Status, t.resp.Header) {
					// The winner: the others are cancelled and released.
					if h.inflight > 0 {
						cl.Stats.RqHedgeCancelled.Add(uint64(h.inflight))
					}
					h.release()
					return t.resp, t.host, t.cancel, nil, h.tried
				}
			} else if errors.Is(t.err, upstream.ErrTimeout) {
				cl.Stats.RqTimeout.Add(1)
			}
			retriable := (t.err == nil) || retriableErr(rp, t.err)
			if h.inflight > 0 {
				// Another try is in flight: it is this one's retry.
				t.done(cl)
				continue
			}
			if retriable && canRetry(attempts) && (routeBy.IsZero() || time.Now().Before(routeBy)) {
				t.done(cl)
				noteRetry()
				attempts++
				if !sleepBackoff(ctx, routeBy, rp, attempts-2) {
					return nil, nil, nil, cmpErr(ctx.Err(), upstream.ErrTimeout), h.tried
				}
				if !h.launch(attempts) {
					return nil, nil, nil, upstream.ErrNoHealthy, h.tried
				}
				perTry.Reset(rp.PerTryTimeout)
				continue
			}
			if t.err == nil {
				// A retriable answer with no retry left is the answer.
				return t.resp, t.host, t.cancel, nil, h.tried
			}
			t.done(cl)
			return nil, nil, nil, t.err, h.tried
		}
	}
}

// cmpErr is err, or def when err is nil.
func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}
