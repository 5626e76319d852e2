// Package memquota is Mixer's memquota adapter: quotas with overrides by
// dimensions counted in fixed windows in mastd's memory, a thin wrapper
// over the quota engine (internal/quota). Package redisquota shares its
// params and dispatch and counts in Redis instead.
package memquota

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/template"
	"github.com/mast-mesh/mast/internal/quota"
)

// QuotaParams is one entry of params.quotas (memquota's and redisquota's).
type QuotaParams struct {
	Name               string           `json:"name"`
	MaxAmount          int64            `json:"maxAmount"`
	ValidDuration      adapter.Duration `json:"validDuration"`
	BucketDuration     adapter.Duration `json:"bucketDuration"`
	RateLimitAlgorithm string           `json:"rateLimitAlgorithm"`
	Overrides          []struct {
		Dimensions    map[string]string `json:"dimensions"`
		MaxAmount     int64             `json:"maxAmount"`
		ValidDuration adapter.Duration  `json:"validDuration"`
	} `json:"overrides"`
}

// Params are memquota's params.
type Params struct {
	Quotas                   []QuotaParams    `json:"quotas"`
	MinDeduplicationDuration adapter.Duration `json:"minDeduplicationDuration"`
}

// Info describes the adapter.
var Info = &adapter.Info{Name: "memquota", Templates: []string{"quota"}, Validate: validate, New: New}

// Limits turns params.quotas into the engine's limits, keyed by instance
// name; algorithms other than FIXED_WINDOW are refused unless rolling is
// allowed (redisquota). Errors name the field.
func Limits(qs []QuotaParams, rolling bool) (map[string]*quota.Limit, error) {
	out := make(map[string]*quota.Limit, len(qs))
	for i, q := range qs {
		f := fmt.Sprintf("params.quotas[%d]", i)
		alg, err := quota.ParseAlgorithm(q.RateLimitAlgorithm)
		if err != nil {
			return nil, fmt.Errorf("%s.rateLimitAlgorithm: %v", f, err)
		}
		if !rolling && q.RateLimitAlgorithm != "" {
			return nil, fmt.Errorf("%s.rateLimitAlgorithm: not a memquota field (memquota counts in fixed windows)", f)
		}
		if !rolling && q.BucketDuration != 0 {
			return nil, fmt.Errorf("%s.bucketDuration: not a memquota field", f)
		}
		if q.ValidDuration == 0 && !rolling {
			// Istio's memquota: no validDuration means the allocation
			// never expires; a long fixed window is the closest.
			q.ValidDuration = adapter.Duration(365 * 24 * time.Hour)
		}
		l := &quota.Limit{Name: q.Name, MaxAmount: q.MaxAmount, ValidDuration: q.ValidDuration.D(), Algorithm: alg, BucketDuration: q.BucketDuration.D()}
		for _, o := range q.Overrides {
			l.Overrides = append(l.Overrides, quota.Override{Dimensions: o.Dimensions, MaxAmount: o.MaxAmount, ValidDuration: o.ValidDuration.D()})
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		if _, dup := out[q.Name]; dup {
			return nil, fmt.Errorf("%s.name: %q given twice", f, q.Name)
		}
		out[q.Name] = l
	}
	return out, nil
}

func parse(params *structpb.Struct) (*Params, map[string]*quota.Limit, error) {
	var p Params
	if err := adapter.Decode(params, &p, "dimensions"); err != nil {
		return nil, nil, err
	}
	ls, err := Limits(p.Quotas, false)
	if err != nil {
		return nil, nil, err
	}
	if p.MinDeduplicationDuration < 0 {
		return nil, nil, fmt.Errorf("params.minDeduplicationDuration: must not be negative")
	}
	if p.MinDeduplicationDuration == 0 {
		p.MinDeduplicationDuration = adapter.Duration(time.Second)
	}
	return &p, ls, nil
}

func validate(params *structpb.Struct) error { _, _, err := parse(params); return err }

// New builds a memquota handler with an in-memory engine.
func New(env adapter.Env, name string, params *structpb.Struct) (adapter.Handler, error) {
	p, ls, err := parse(params)
	if err != nil {
		return nil, err
	}
	return NewHandler(quota.NewMemory(env.Now), ls, p.MinDeduplicationDuration.D(), env.Now), nil
}

// Handler dispatches quota instances to an engine.
type Handler struct {
	engine quota.Engine
	limits map[string]*quota.Limit
	dedup  time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]dedupEntry
}

type dedupEntry struct {
	res adapter.QuotaResult
	at  time.Time
}

var _ adapter.Quotaer = (*Handler)(nil)

// NewHandler returns a handler over engine (which it closes).
func NewHandler(engine quota.Engine, limits map[string]*quota.Limit, dedup time.Duration, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{engine: engine, limits: limits, dedup: dedup, now: now, seen: map[string]dedupEntry{}}
}

// HandleQuota implements adapter.Quotaer. A repeated deduplication id
// within minDeduplicationDuration gets the first answer again.
func (h *Handler) HandleQuota(ctx context.Context, inst *template.Instance, args adapter.QuotaArgs) (adapter.QuotaResult, error) {
	l := h.limits[inst.Name]
	if l == nil {
		// As Istio: a quota this handler has no limit for is not limited.
		return adapter.QuotaResult{Granted: args.Amount, ValidDuration: time.Minute}, nil
	}
	now := h.now()
	if args.DeduplicationID != "" {
		h.mu.Lock()
		for id, e := range h.seen {
			if now.Sub(e.at) > h.dedup {
				delete(h.seen, id)
			}
		}
		if e, ok := h.seen[args.DeduplicationID]; ok {
			h.mu.Unlock()
			return e.res, nil
		}
		h.mu.Unlock()
	}
	b := quota.AllOrNothing
	if args.BestEffort {
		b = quota.BestEffort
	}
	r, err := h.engine.Allocate(ctx, quota.Request{Limit: l, Dimensions: inst.Map("dimensions"), Amount: args.Amount, Behavior: b})
	if err != nil {
		return adapter.QuotaResult{Status: adapter.Status{Code: codes.Unavailable, Message: err.Error()}}, nil
	}
	res := adapter.QuotaResult{Granted: r.Granted, ValidDuration: r.ValidDuration}
	if args.DeduplicationID != "" {
		h.mu.Lock()
		h.seen[args.DeduplicationID] = dedupEntry{res: res, at: now}
		h.mu.Unlock()
	}
	return res, nil
}

// Close closes the engine.
func (h *Handler) Close() error { return h.engine.Close() }
