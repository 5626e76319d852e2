package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/quota"
)

// Service is mastd's envoy.service.ratelimit.v3.RateLimitService: every
// descriptor the generated rate_limits actions produce names its RateLimit
// (RuleKey) and carries the dimension values in order; the service
// allocates hits_addend from the quota engine, all or nothing. Descriptors
// of other domains or of unknown rules are not limited (Envoy's ratelimit
// service does the same).
type Service struct {
	rlsv3.UnimplementedRateLimitServiceServer
	engine quota.Engine
	log    *slog.Logger
	rules  atomic.Pointer[map[string]*Rule]
}

var _ rlsv3.RateLimitServiceServer = (*Service)(nil)

// NewService serves rules (set with Update) from engine.
func NewService(engine quota.Engine, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	s := &Service{engine: engine, log: log}
	s.Update(nil)
	return s
}

// Register adds the service to a gRPC server.
func (s *Service) Register(gs *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(gs, s) }

// Update replaces the GLOBAL rules the service enforces.
func (s *Service) Update(rules []*Rule) {
	m := make(map[string]*Rule, len(rules))
	for _, r := range rules {
		if !r.Local {
			m[r.ID] = r
		}
	}
	s.rules.Store(&m)
}

// ShouldRateLimit implements RateLimitService.
func (s *Service) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	resp := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}
	if len(req.GetDescriptors()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "descriptors: empty")
	}
	rules := *s.rules.Load()
	hits := int64(req.GetHitsAddend())
	if hits == 0 {
		hits = 1
	}
	for i, d := range req.GetDescriptors() {
		if d.GetLimit() != nil {
			return nil, status.Errorf(codes.InvalidArgument, "descriptors[%d].limit: not supported (limits come from RateLimit resources)", i)
		}
		if d.GetIsNegativeHits() {
			return nil, status.Errorf(codes.InvalidArgument, "descriptors[%d].is_negative_hits: not supported", i)
		}
		st := &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
		resp.Statuses = append(resp.Statuses, st)
		if req.GetDomain() != Domain {
			continue
		}
		rule, dims := match(rules, d.GetEntries())
		if rule == nil {
			continue
		}
		n := hits
		if h := d.GetHitsAddend(); h != nil {
			if h.GetValue() > math.MaxInt64 {
				return nil, status.Errorf(codes.InvalidArgument, "descriptors[%d].hits_addend: too large", i)
			}
			n = int64(h.GetValue())
		}
		res, err := s.engine.Allocate(ctx, quota.Request{Limit: rule.Limit, Dimensions: dims, Amount: n, Behavior: quota.AllOrNothing})
		if err != nil {
			s.log.Warn("quota allocation failed", "rule", rule.ID, "err", err)
			return nil, status.Errorf(codes.Unavailable, "quota %s: %v", rule.ID, err)
		}
		if res.Granted < n {
			st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
			resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		}
		_, window := rule.Limit.Effective(dims)
		st.CurrentLimit = currentLimit(rule.ID, res.Limit, window)
		st.LimitRemaining = uint32(min(res.Remaining, math.MaxUint32))
		st.DurationUntilReset = durationpb.New(ceilSecond(res.ResetAfter))
	}
	return resp, nil
}

// match finds the rule a descriptor names and its dimension values; nil
// when the descriptor is not one of Mast's or does not fit its rule.
func match(rules map[string]*Rule, entries []*rlcommon.RateLimitDescriptor_Entry) (*Rule, map[string]string) {
	if len(entries) == 0 || entries[0].GetKey() != RuleKey {
		return nil, nil
	}
	rule := rules[entries[0].GetValue()]
	if rule == nil || len(entries)-1 != len(rule.Dimensions) {
		return nil, nil
	}
	dims := make(map[string]string, len(rule.Dimensions))
	for i, d := range rule.Dimensions {
		e := entries[i+1]
		if e.GetKey() != DescriptorKey(d) {
			return nil, nil
		}
		dims[d.GetName()] = e.GetValue()
	}
	return rule, dims
}

// ceilSecond rounds a positive duration up to whole seconds (the headers
// and Envoy's clients count in seconds; 0.2s left must not read as 0).
func ceilSecond(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

var units = []struct {
	d time.Duration
	u rlsv3.RateLimitResponse_RateLimit_Unit
}{
	{7 * 24 * time.Hour, rlsv3.RateLimitResponse_RateLimit_WEEK},
	{24 * time.Hour, rlsv3.RateLimitResponse_RateLimit_DAY},
	{time.Hour, rlsv3.RateLimitResponse_RateLimit_HOUR},
	{time.Minute, rlsv3.RateLimitResponse_RateLimit_MINUTE},
	{time.Second, rlsv3.RateLimitResponse_RateLimit_SECOND},
}

// currentLimit expresses max per window in Envoy's units: the largest unit
// that divides the window, with a multiplier; UNKNOWN under a second.
func currentLimit(name string, max int64, window time.Duration) *rlsv3.RateLimitResponse_RateLimit {
	l := &rlsv3.RateLimitResponse_RateLimit{Name: name, RequestsPerUnit: uint32(min(max, math.MaxUint32))}
	for _, u := range units {
		if window >= u.d && window%u.d == 0 {
			l.Unit = u.u
			if m := window / u.d; m != 1 && m <= math.MaxUint32 {
				l.UnitMultiplier = wrapperspb.UInt32(uint32(m))
			}
			return l
		}
	}
	return l
}
