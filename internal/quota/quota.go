// Package quota is Mast's quota engine: it allocates amounts against named
// limits keyed by dimensions, in fixed or rolling windows, with overrides by
// dimensions. One interface, two backends: Memory (one mastd) and Redis
// (several mastd or gateways share one limit; allocation is one Lua script, so
// it is atomic across clients).
//
// Mixer's memquota and redisquota adapters and mastd's rate-limit service
// (envoy.service.ratelimit.v3) all call Engine.Allocate.
package quota

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Algorithm is how a limit's window moves.
type Algorithm int

const (
	// FixedWindow counts in windows of ValidDuration aligned to the epoch
	// (Mixer's FIXED_WINDOW): at most MaxAmount per window.
	FixedWindow Algorithm = iota
	// RollingWindow counts in buckets of BucketDuration and allows at most
	// MaxAmount in the last ValidDuration (Mixer's ROLLING_WINDOW).
	RollingWindow
)

func (a Algorithm) String() string {
	switch a {
	case FixedWindow:
		return "FIXED_WINDOW"
	case RollingWindow:
		return "ROLLING_WINDOW"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// ParseAlgorithm reads Mixer's names; "" is FIXED_WINDOW.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch s {
	case "", "FIXED_WINDOW":
		return FixedWindow, nil
	case "ROLLING_WINDOW":
		return RollingWindow, nil
	}
	return 0, fmt.Errorf("unknown algorithm %q (want FIXED_WINDOW or ROLLING_WINDOW)", s)
}

// Behavior says what to grant when less than the amount asked for is left.
type Behavior int

const (
	// AllOrNothing grants the whole amount or nothing (Mixer's
	// QuotaArgs.BestEffort=false, Envoy's rate-limit service).
	AllOrNothing Behavior = iota
	// BestEffort grants what is left, up to the amount.
	BestEffort
)

// Limit is one named quota: MaxAmount per ValidDuration for every distinct
// set of dimensions, unless an Override matches them.
type Limit struct {
	Name      string
	MaxAmount int64
	// ValidDuration is the window length (> 0).
	ValidDuration time.Duration
	Algorithm     Algorithm
	// BucketDuration is the rolling window's granularity; 0 means
	// ValidDuration/10 (at least 1ms). Ignored by FixedWindow.
	BucketDuration time.Duration
	// Overrides are tried in order; the first whose Dimensions are all equal
	// to the request's wins.
	Overrides []Override
}

// Override replaces MaxAmount (and ValidDuration when > 0) for the requests
// whose dimensions include all of Dimensions.
type Override struct {
	Dimensions    map[string]string
	MaxAmount     int64
	ValidDuration time.Duration
}

// Validate checks a limit; errors name the field.
func (l *Limit) Validate() error {
	var errs []error
	if l.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if l.MaxAmount < 0 {
		errs = append(errs, fmt.Errorf("maxAmount: %d is negative", l.MaxAmount))
	}
	if l.ValidDuration <= 0 {
		errs = append(errs, errors.New("validDuration: must be > 0"))
	}
	if l.BucketDuration < 0 {
		errs = append(errs, errors.New("bucketDuration: must not be negative"))
	}
	if l.Algorithm == RollingWindow && l.BucketDuration > 0 && l.ValidDuration > 0 {
		if l.BucketDuration > l.ValidDuration {
			errs = append(errs, fmt.Errorf("bucketDuration: %v is longer than validDuration %v", l.BucketDuration, l.ValidDuration))
		} else if l.ValidDuration/l.BucketDuration > maxBuckets {
			errs = append(errs, fmt.Errorf("bucketDuration: %v gives more than %d buckets per validDuration %v", l.BucketDuration, maxBuckets, l.ValidDuration))
		}
	}
	for i, o := range l.Overrides {
		if o.MaxAmount < 0 {
			errs = append(errs, fmt.Errorf("overrides[%d].maxAmount: %d is negative", i, o.MaxAmount))
		}
		if o.ValidDuration < 0 {
			errs = append(errs, fmt.Errorf("overrides[%d].validDuration: must not be negative", i))
		}
		if len(o.Dimensions) == 0 {
			errs = append(errs, fmt.Errorf("overrides[%d].dimensions: required", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("quota %q: %w", l.Name, err)
	}
	return nil
}

// maxBuckets bounds a rolling window's work per allocation.
const maxBuckets = 1000

// Effective returns the max amount and window that apply to dims.
func (l *Limit) Effective(dims map[string]string) (maxAmount int64, window time.Duration) {
	for _, o := range l.Overrides {
		if matches(o.Dimensions, dims) {
			w := o.ValidDuration
			if w <= 0 {
				w = l.ValidDuration
			}
			return o.MaxAmount, w
		}
	}
	return l.MaxAmount, l.ValidDuration
}

func (l *Limit) bucket(window time.Duration) time.Duration {
	b := l.BucketDuration
	if b <= 0 || b > window {
		b = window / 10
	}
	if b < time.Millisecond {
		b = time.Millisecond
	}
	if window/b > maxBuckets {
		b = window / maxBuckets
	}
	return b
}

func matches(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// Request asks for Amount of Limit for one set of dimensions.
type Request struct {
	Limit      *Limit
	Dimensions map[string]string
	Amount     int64
	Behavior   Behavior
}

// Result is the outcome of one allocation.
type Result struct {
	// Granted is what was allocated: Amount, less (BestEffort), or 0.
	Granted int64
	// ValidDuration is how long the grant counts against the limit: until
	// the fixed window ends, or the full window for a rolling one (Mixer's
	// QuotaResult.ValidDuration).
	ValidDuration time.Duration
	// Limit is the max amount that applied (after overrides).
	Limit int64
	// Remaining is what is left in the window after this allocation.
	Remaining int64
	// ResetAfter is when Remaining grows again: the end of the fixed window,
	// or when the oldest counted rolling bucket leaves the window
	// (x-ratelimit-reset, Envoy's duration_until_reset).
	ResetAfter time.Duration
}

// Engine allocates quota. Implementations are safe for concurrent use.
type Engine interface {
	// Allocate grants up to req.Amount of req.Limit for req.Dimensions.
	// An error means the backend failed (Redis unreachable): callers decide
	// fail open or closed.
	Allocate(ctx context.Context, req Request) (Result, error)
	// Close releases the backend.
	Close() error
}

// Key is the storage key of one limit and set of dimensions: the name and
// the dimensions sorted by name, each part length-prefixed so that no two
// different inputs share a key.
func Key(name string, dims map[string]string) string {
	var arr [8]string
	keys := arr[:0]
	n := len(name) + 4
	for k, v := range dims {
		keys = append(keys, k)
		n += len(k) + len(v) + 8
	}
	sort.Strings(keys)
	b := make([]byte, 0, n)
	b = appendPart(b, name)
	for _, k := range keys {
		b = appendPart(b, k)
		b = appendPart(b, dims[k])
	}
	return string(b)
}

func appendPart(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, ';')
}

func checkRequest(req Request) error {
	if req.Limit == nil {
		return errors.New("quota: request without a limit")
	}
	if req.Amount < 0 {
		return fmt.Errorf("quota %q: negative amount %d", req.Limit.Name, req.Amount)
	}
	return nil
}
