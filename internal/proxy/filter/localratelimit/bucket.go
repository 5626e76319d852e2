package localratelimit

import (
	"errors"
	"fmt"
	"sync"
	"time"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// bucket is Envoy's token bucket: it starts full with max tokens and gains
// perFill tokens (up to max) at every fill interval.
type bucket struct {
	max, perFill uint32
	interval     time.Duration
	now          func() time.Time

	mu       sync.Mutex
	tokens   uint32
	lastFill time.Time
}

func newBucket(tb *typev3.TokenBucket, field string, now func() time.Time) (*bucket, error) {
	if tb == nil {
		return nil, fmt.Errorf("%s: required", field)
	}
	if tb.GetMaxTokens() == 0 {
		return nil, fmt.Errorf("%s.max_tokens: must be > 0", field)
	}
	per := uint32(1)
	if tb.GetTokensPerFill() != nil {
		per = tb.GetTokensPerFill().GetValue()
		if per == 0 {
			return nil, fmt.Errorf("%s.tokens_per_fill: must be > 0", field)
		}
	}
	if err := tb.GetFillInterval().CheckValid(); err != nil || tb.GetFillInterval() == nil {
		return nil, fmt.Errorf("%s.fill_interval: required", field)
	}
	iv := tb.GetFillInterval().AsDuration()
	if iv < 50*time.Millisecond {
		return nil, errors.New(field + ".fill_interval: must be at least 50ms (Envoy's minimum)")
	}
	if now == nil {
		now = time.Now
	}
	return &bucket{max: tb.GetMaxTokens(), perFill: per, interval: iv, now: now, tokens: tb.GetMaxTokens(), lastFill: now()}, nil
}

// state is what a request saw of a bucket (for x-ratelimit-* headers).
type state struct {
	limit, remaining uint32
	reset            time.Duration // until the next fill
}

// refill adds the tokens of every interval passed; b.mu held.
func (b *bucket) refill(now time.Time) {
	if n := now.Sub(b.lastFill) / b.interval; n > 0 {
		add := uint64(n) * uint64(b.perFill)
		b.tokens = uint32(min(uint64(b.max), uint64(b.tokens)+add))
		b.lastFill = b.lastFill.Add(n * b.interval)
	}
}

// take consumes one token; false when the bucket is empty.
func (b *bucket) take() (bool, state) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	ok := b.tokens > 0
	if ok {
		b.tokens--
	}
	return ok, state{limit: b.max, remaining: b.tokens, reset: b.lastFill.Add(b.interval).Sub(now)}
}
