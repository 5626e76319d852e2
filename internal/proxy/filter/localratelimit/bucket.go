package localratelimit

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
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

// Field numbers of envoy.type.v3.TokenBucket and the wrappers it uses.
const (
	tbMaxTokens     = 1
	tbTokensPerFill = 2
	tbFillInterval  = 3
	valueField      = 1 // UInt32Value.value
)

// newWireBucket is newBucket over a decoded TokenBucket (nil: absent).
func newWireBucket(tb *pbwire.Msg, field string, now func() time.Time) (*bucket, error) {
	if tb == nil {
		return nil, fmt.Errorf("%s: required", field)
	}
	s := bucketSpec{max: tb.U32(tbMaxTokens), per: 1}
	if tb.Has(tbTokensPerFill) {
		s.perSet, s.per = true, tb.Sub(tbTokensPerFill).U32(valueField)
	}
	if iv := tb.Sub(tbFillInterval); iv != nil {
		s.interval, s.intervalOK = pbwire.Duration(iv), durationValid(iv.I64(1), iv.I32(2))
	}
	return s.bucket(field, now)
}

// durationValid is durationpb's CheckValid: seconds within ±10,000 years,
// nanos within a second and of the same sign.
func durationValid(secs int64, nanos int32) bool {
	const maxSecs = 315_576_000_000
	switch {
	case secs < -maxSecs || secs > maxSecs, nanos <= -1e9 || nanos >= 1e9:
		return false
	case secs > 0 && nanos < 0, secs < 0 && nanos > 0:
		return false
	}
	return true
}

// bucketSpec is a TokenBucket read by either decoder.
type bucketSpec struct {
	max, per   uint32
	perSet     bool
	interval   time.Duration
	intervalOK bool // fill_interval present and a valid Duration
}

func (s bucketSpec) bucket(field string, now func() time.Time) (*bucket, error) {
	if s.max == 0 {
		return nil, fmt.Errorf("%s.max_tokens: must be > 0", field)
	}
	if s.perSet && s.per == 0 {
		return nil, fmt.Errorf("%s.tokens_per_fill: must be > 0", field)
	}
	if !s.intervalOK {
		return nil, fmt.Errorf("%s.fill_interval: required", field)
	}
	if s.interval < 50*time.Millisecond {
		return nil, errors.New(field + ".fill_interval: must be at least 50ms (Envoy's minimum)")
	}
	if now == nil {
		now = time.Now
	}
	return &bucket{max: s.max, perFill: s.per, interval: s.interval, now: now, tokens: s.max, lastFill: now()}, nil
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
