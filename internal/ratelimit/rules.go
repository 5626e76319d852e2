// Package ratelimit is Mast's first-class rate limit: RateLimit resources
// (ratelimit.mast.io/v1alpha1, docs/ratelimit.md) compiled into rules, and
// mastd's implementation of Envoy's envoy.service.ratelimit.v3
// RateLimitService over the quota engine (internal/quota). The generators
// (internal/pilot/generate) turn the same rules into Envoy rate_limits
// actions and local_ratelimit filters.
package ratelimit

import (
	"maps"
	"slices"
	"time"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/quota"
	"github.com/mast-mesh/mast/internal/ratelimit/ratelimitpb"
)

// Domain is the rate-limit domain of every generated limit.
const Domain = "mast"

// RuleKey is the descriptor key whose value names the RateLimit resource
// ("namespace/name"); it is the first entry of every generated descriptor.
const RuleKey = "mast_ratelimit"

// RemoteAddressKey is the descriptor key Envoy's remote_address action uses.
const RemoteAddressKey = "remote_address"

// DefaultTimeout is Envoy's ratelimit filter's default.
const DefaultTimeout = 20 * time.Millisecond

// Rule is one compiled RateLimit resource.
type Rule struct {
	ID        string // "namespace/name"
	Namespace string
	Selector  map[string]string
	Local     bool
	// Dimensions in descriptor order.
	Dimensions []*ratelimitpb.Dimension
	Limit      *quota.Limit
	// FailureModeDeny, Timeout and Headers configure the proxy's filter.
	FailureModeDeny bool
	Timeout         time.Duration
	Headers         bool
}

// DescriptorKey is the key of dimension d in a descriptor: its name, or
// remote_address for the client address (Envoy's fixed key).
func DescriptorKey(d *ratelimitpb.Dimension) string {
	if d.GetRemoteAddress() {
		return RemoteAddressKey
	}
	return d.GetName()
}

// Compile turns one validated RateLimit resource into a rule.
func Compile(r config.Resource) *Rule {
	s, ok := r.Spec.(*ratelimitpb.RateLimit)
	if !ok {
		return nil
	}
	id := r.Namespace + "/" + r.Name
	l := &quota.Limit{
		Name:           id,
		MaxAmount:      s.GetMaxAmount(),
		ValidDuration:  s.GetValidDuration().AsDuration(),
		BucketDuration: s.GetBucketDuration().AsDuration(),
	}
	if s.GetAlgorithm() == ratelimitpb.RateLimit_ROLLING_WINDOW {
		l.Algorithm = quota.RollingWindow
	}
	for _, o := range s.GetOverrides() {
		l.Overrides = append(l.Overrides, quota.Override{
			Dimensions:    maps.Clone(o.GetDimensions()),
			MaxAmount:     o.GetMaxAmount(),
			ValidDuration: o.GetValidDuration().AsDuration(),
		})
	}
	t := DefaultTimeout
	if s.Timeout != nil {
		t = s.GetTimeout().AsDuration()
	}
	return &Rule{
		ID:              id,
		Namespace:       r.Namespace,
		Selector:        s.GetSelector().GetMatchLabels(),
		Local:           s.GetMode() == ratelimitpb.RateLimit_LOCAL,
		Dimensions:      s.GetDimensions(),
		Limit:           l,
		FailureModeDeny: s.GetFailureModeDeny(),
		Timeout:         t,
		Headers:         s.ResponseHeaders == nil || s.GetResponseHeaders(),
	}
}

// Rules compiles every RateLimit of a snapshot, sorted by ID.
func Rules(snap *config.Snapshot) []*Rule {
	if snap == nil {
		return nil
	}
	var out []*Rule
	for _, r := range snap.List(config.RateLimit) {
		if rule := Compile(r); rule != nil {
			out = append(out, rule)
		}
	}
	slices.SortFunc(out, func(a, b *Rule) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Selects reports whether the rule applies to a workload with these labels
// in this namespace; rules of the root namespace apply mesh-wide.
func (r *Rule) Selects(rootNamespace, namespace string, labels map[string]string) bool {
	if r.Namespace != namespace && r.Namespace != rootNamespace {
		return false
	}
	for k, v := range r.Selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
