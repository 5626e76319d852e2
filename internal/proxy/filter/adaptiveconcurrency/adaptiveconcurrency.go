// Package adaptiveconcurrency is Envoy's adaptive concurrency HTTP filter
// (envoy.filters.http.adaptive_concurrency) with its gradient controller:
// the requests outstanding through the filter are limited to a number that
// follows the latency the upstream shows, compared with its latency when
// nearly idle (minRTT).
//
//   - minRTT: for a window, the limit is min_concurrency; the
//     sample_aggregate_percentile of request_count latencies is the minRTT.
//     The window comes again every interval (plus up to jitter percent), and
//     when the limit sat at its minimum for 5 update intervals in a row.
//   - Every concurrency_update_interval with samples: sampleRTT is their
//     percentile; gradient = clamp((minRTT + buffer% * minRTT) / sampleRTT,
//     0.5, 2); limit = limit * gradient; limit += sqrt(limit); bounded by
//     min_concurrency_limit (default min_concurrency) and
//     max_concurrency_limit.
//   - A request over the limit gets 503 (or concurrency_limit_exceeded_status)
//     "reached concurrency limit", details reached_concurrency_limit.
//
// A latency is the time from the request head to the end of the exchange.
// No timer runs: the update that is due is made by the next request to end.
package adaptiveconcurrency

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// Name and type URL.
const (
	Name    = "envoy.filters.http.adaptive_concurrency"
	TypeURL = "type.googleapis.com/envoy.extensions.filters.http.adaptive_concurrency.v3.AdaptiveConcurrency"
)

// Config is a parsed gradient controller configuration.
type Config struct {
	Percentile     float64 // sample_aggregate_percentile, 0..100
	MaxLimit       uint32
	MinLimit       uint32 // min_concurrency_limit
	UpdateInterval time.Duration
	MinRTTInterval time.Duration // 0 with a FixedMinRTT
	FixedMinRTT    time.Duration
	RequestCount   uint32
	Jitter         float64 // percent
	MinConcurrency uint32
	Buffer         float64 // percent
	Status         int
}

// Filter is the HTTP filter: one controller per filter instance (per
// listener's connection manager), as in Envoy.
type Filter struct {
	c *controller
}

var (
	_ filter.HTTPFilter  = (*Filter)(nil)
	_ filter.StatsFilter = (*Filter)(nil)
)

// New parses an AdaptiveConcurrency typed_config.
func New(_ string, cfg *anypb.Any) (filter.HTTPFilter, error) {
	c, err := Parse(cfg.GetValue())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return &Filter{c: newController(c, time.Now())}, nil
}

// Field numbers of AdaptiveConcurrency, GradientControllerConfig, its
// ConcurrencyLimitCalculationParams and MinimumRTTCalculationParams, and
// of the wrappers they use.
const (
	acGradient = 1
	acEnabled  = 2
	acStatus   = 3

	gcPercentile = 1
	gcLimit      = 2
	gcMinRTT     = 3

	lpMax      = 2
	lpInterval = 3
	lpMin      = 4

	rpInterval       = 1
	rpRequestCount   = 2
	rpJitter         = 3
	rpMinConcurrency = 4
	rpBuffer         = 5
	rpFixed          = 6

	valueField = 1 // Percent.value, UInt32Value.value, HttpStatus.code
)

// Parse decodes an AdaptiveConcurrency from its wire bytes and applies
// Envoy's defaults; settings the controller does not honour are errors.
func Parse(b []byte) (Config, error) {
	c := Config{Percentile: 50, MaxLimit: 1000, RequestCount: 50, Jitter: 15, MinConcurrency: 3, Buffer: 25, Status: 503}
	m, err := pbwire.Decode(wireTable, wireAdaptiveConcurrency, b)
	if err != nil {
		return c, fmt.Errorf("decode: %w", err)
	}
	if m.Has(acEnabled) {
		return c, errors.New("enabled: runtime feature flags are not supported (leave it unset: the filter is on)")
	}
	if m.Has(acStatus) {
		if c.Status = int(m.Sub(acStatus).I32(valueField)); c.Status < 400 {
			c.Status = 503
		}
	}
	if !m.Has(acGradient) {
		return c, errors.New("gradient_controller_config: required (the only controller)")
	}
	g := m.Sub(acGradient)
	if g.Has(gcPercentile) {
		if c.Percentile = g.Sub(gcPercentile).Double(valueField); c.Percentile < 0 || c.Percentile > 100 {
			return c, fmt.Errorf("sample_aggregate_percentile %v: must be in 0..100", c.Percentile)
		}
	}
	lp := g.Sub(gcLimit)
	if !lp.Has(lpInterval) {
		return c, errors.New("concurrency_limit_params.concurrency_update_interval: required")
	}
	if c.UpdateInterval = pbwire.Duration(lp.Sub(lpInterval)); c.UpdateInterval <= 0 {
		return c, errors.New("concurrency_limit_params.concurrency_update_interval: must be > 0")
	}
	if lp.Has(lpMax) {
		c.MaxLimit = lp.Sub(lpMax).U32(valueField)
	}
	if !g.Has(gcMinRTT) {
		return c, errors.New("min_rtt_calc_params: required")
	}
	rp := g.Sub(gcMinRTT)
	switch {
	case rp.Has(rpFixed):
		if c.FixedMinRTT = pbwire.Duration(rp.Sub(rpFixed)); c.FixedMinRTT <= 0 {
			return c, errors.New("min_rtt_calc_params.fixed_value: must be > 0")
		}
	case rp.Has(rpInterval):
		if c.MinRTTInterval = pbwire.Duration(rp.Sub(rpInterval)); c.MinRTTInterval <= 0 {
			return c, errors.New("min_rtt_calc_params.interval: must be > 0")
		}
	default:
		return c, errors.New("min_rtt_calc_params: interval or fixed_value required")
	}
	if rp.Has(rpRequestCount) {
		if c.RequestCount = rp.Sub(rpRequestCount).U32(valueField); c.RequestCount == 0 {
			return c, errors.New("min_rtt_calc_params.request_count: must be > 0")
		}
	}
	if rp.Has(rpJitter) {
		c.Jitter = rp.Sub(rpJitter).Double(valueField)
	}
	if rp.Has(rpMinConcurrency) {
		if c.MinConcurrency = rp.Sub(rpMinConcurrency).U32(valueField); c.MinConcurrency == 0 {
			return c, errors.New("min_rtt_calc_params.min_concurrency: must be > 0")
		}
	}
	if rp.Has(rpBuffer) {
		c.Buffer = rp.Sub(rpBuffer).Double(valueField)
	}
	c.MinLimit = c.MinConcurrency
	if lp.Has(lpMin) {
		c.MinLimit = max(lp.Sub(lpMin).U32(valueField), 1)
	}
	if c.MaxLimit < c.MinLimit {
		return c, fmt.Errorf("concurrency_limit_params.max_concurrency_limit %d: under the minimum %d", c.MaxLimit, c.MinLimit)
	}
	return c, nil
}

// DecodeHeaders admits the request under the limit or refuses it.
func (f *Filter) DecodeHeaders(_ context.Context, r *filter.Request) filter.Status {
	c := f.c
	if !c.acquire() {
		c.blocked.Add(1)
		r.Details = "reached_concurrency_limit"
		return r.LocalReply(c.cfg.Status, "reached concurrency limit", "")
	}
	start := time.Now()
	r.Defer(func() { c.release(time.Now(), time.Since(start)) })
	return filter.Continue
}

// Stats are Envoy's gradient_controller statistics.
func (f *Filter) Stats(add func(name string, value int64, gauge bool)) {
	c := f.c
	c.mu.Lock()
	minRTT, sample, active := c.minRTT, c.sampleRTT, c.inMinRTT
	c.mu.Unlock()
	add("adaptive_concurrency_gradient_controller_rq_blocked", int64(c.blocked.Load()), false)
	add("adaptive_concurrency_gradient_controller_concurrency_limit", int64(c.limit.Load()), true)
	add("adaptive_concurrency_gradient_controller_min_rtt_msecs", minRTT.Milliseconds(), true)
	add("adaptive_concurrency_gradient_controller_sample_rtt_msecs", sample.Milliseconds(), true)
	a := int64(0)
	if active {
		a = 1
	}
	add("adaptive_concurrency_gradient_controller_min_rtt_calculation_active", a, true)
}

// controller is the gradient controller's state.
type controller struct {
	cfg      Config
	limit    atomic.Uint32
	inflight atomic.Int64
	blocked  atomic.Uint64

	mu         sync.Mutex
	minRTT     time.Duration
	sampleRTT  time.Duration
	inMinRTT   bool
	saved      uint32 // the limit before a minRTT window
	samples    []time.Duration
	nextUpdate time.Time
	nextMinRTT time.Time
	atMinimum  int // update intervals in a row at the minimum limit
}

func newController(cfg Config, now time.Time) *controller {
	c := &controller{cfg: cfg, nextUpdate: now.Add(cfg.UpdateInterval)}
	c.limit.Store(cfg.MinLimit)
	if cfg.FixedMinRTT > 0 {
		c.minRTT = cfg.FixedMinRTT
	} else {
		c.saved = cfg.MinLimit
		c.startMinRTT()
	}
	return c
}

func (c *controller) acquire() bool {
	for {
		n := c.inflight.Load()
		if n >= int64(c.limit.Load()) {
			return false
		}
		if c.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release ends a request that took d and, when due, updates the limit.
func (c *controller) release(now time.Time, d time.Duration) {
	c.inflight.Add(-1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples = append(c.samples, d)
	if c.inMinRTT {
		if len(c.samples) >= int(c.cfg.RequestCount) {
			c.minRTT = percentile(c.samples, c.cfg.Percentile)
			c.samples = c.samples[:0]
			c.inMinRTT = false
			c.limit.Store(max(c.saved, c.cfg.MinLimit))
			jitter := time.Duration(0)
			if j := float64(c.cfg.MinRTTInterval) * c.cfg.Jitter / 100; j >= 1 {
				jitter = time.Duration(rand.Int64N(int64(j)))
			}
			c.nextMinRTT = now.Add(c.cfg.MinRTTInterval + jitter)
			c.nextUpdate = now.Add(c.cfg.UpdateInterval)
		}
		return
	}
	if now.Before(c.nextUpdate) {
		return
	}
	c.nextUpdate = now.Add(c.cfg.UpdateInterval)
	c.sampleRTT = percentile(c.samples, c.cfg.Percentile)
	c.samples = c.samples[:0]
	limit := c.next(float64(c.limit.Load()))
	c.limit.Store(limit)
	if limit == c.cfg.MinLimit {
		c.atMinimum++
	} else {
		c.atMinimum = 0
	}
	if c.cfg.FixedMinRTT == 0 && (c.atMinimum >= 5 || !now.Before(c.nextMinRTT)) {
		c.saved = limit
		c.startMinRTT()
	}
}

// next is the gradient step from limit.
func (c *controller) next(limit float64) uint32 {
	buffer := float64(c.minRTT) * c.cfg.Buffer / 100
	gradient := 2.0
	if c.sampleRTT > 0 {
		gradient = min(2, max(0.5, (float64(c.minRTT)+buffer)/float64(c.sampleRTT)))
	}
	l := limit * gradient
	l += math.Sqrt(l)
	return uint32(min(float64(c.cfg.MaxLimit), max(float64(c.cfg.MinLimit), math.Floor(l))))
}

// startMinRTT opens a minRTT window: the limit drops to min_concurrency.
func (c *controller) startMinRTT() {
	c.inMinRTT = true
	c.atMinimum = 0
	c.samples = c.samples[:0]
	c.limit.Store(c.cfg.MinConcurrency)
}

func percentile(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
