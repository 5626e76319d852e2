package generate

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netlocalrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/mast-mesh/mast/internal/ratelimit"
)

// Filter names of the rate-limit filters (each configured filter's name is
// its kind plus the RateLimit's namespace/name, so several coexist).
const (
	rateLimitFilterName        = "envoy.filters.http.ratelimit"
	localRateLimitFilterName   = "envoy.filters.http.local_ratelimit"
	netLocalRateLimitFilerName = "envoy.filters.network.local_ratelimit"
)

// rateLimitFilters are the filters of the RateLimit resources that select
// this proxy, for the chains that receive its traffic (sidecar inbound,
// every gateway chain): a GLOBAL limit is an envoy.filters.http.ratelimit
// filter calling mastd's rate-limit service with its descriptor built by
// the filter's rate_limits actions; a LOCAL limit is an
// envoy.filters.http.local_ratelimit token bucket (and
// envoy.filters.network.local_ratelimit, counting connections, on TCP chains
// when it has no dimensions). They run after authentication and
// authorization, before fault, CORS and the router.
func (g *gen) rateLimitFilters() (httpFilters []*hcmv3.HttpFilter, tcpFilters []*listenerv3.Filter) {
	if g.pc.Config == nil || g.grpc {
		return nil, nil
	}
	for _, r := range ratelimit.Rules(g.pc.Config) {
		if !r.Selects(g.pc.Mesh.RootNamespace, g.p.Namespace, g.p.Labels) {
			continue
		}
		if r.Local {
			httpFilters = append(httpFilters, httpFilter(localRateLimitFilterName+"/"+r.ID, toAny(localRateLimit(r))))
			if len(r.Dimensions) == 0 {
				tcpFilters = append(tcpFilters, &listenerv3.Filter{Name: netLocalRateLimitFilerName + "/" + r.ID,
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(netLocalRateLimit(r))}})
			}
			continue
		}
		if g.pc.Mesh.RateLimitService == "" {
			continue // mastd runs without its rate-limit service; it warns
		}
		httpFilters = append(httpFilters, httpFilter(rateLimitFilterName+"/"+r.ID, toAny(globalRateLimit(r, g.pc.Mesh.RateLimitService))))
	}
	return httpFilters, tcpFilters
}

// insertBeforeFaultOrCORS puts fs before fault or CORS, before the router at
// the latest.
func insertBeforeFaultOrCORS(m *hcmv3.HttpConnectionManager, fs []*hcmv3.HttpFilter) {
	at := len(m.HttpFilters) - 1
	for i, f := range m.HttpFilters {
		if f.GetName() == faultFilterName || f.GetName() == corsFilterName {
			at = i
			break
		}
	}
	m.HttpFilters = insertHTTPFilters(m.HttpFilters, at, fs)
}

// descriptorActions are the actions building a rule's descriptor: the rule
// (generic_key mast_ratelimit = namespace/name) then its dimensions.
func descriptorActions(r *ratelimit.Rule, withRule bool) []*routev3.RateLimit_Action {
	var acts []*routev3.RateLimit_Action
	if withRule {
		acts = append(acts, genericKey(ratelimit.RuleKey, r.ID))
	}
	for _, d := range r.Dimensions {
		switch {
		case d.GetRemoteAddress():
			acts = append(acts, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}})
		case d.GetRequestHeader() != "":
			acts = append(acts, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{
				HeaderName: d.GetRequestHeader(), DescriptorKey: d.GetName()}}})
		default:
			acts = append(acts, genericKey(d.GetName(), d.GetValue()))
		}
	}
	return acts
}

func genericKey(key, value string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{
		DescriptorKey: key, DescriptorValue: value}}}
}

func globalRateLimit(r *ratelimit.Rule, service string) *rlhttpv3.RateLimit {
	c := &rlhttpv3.RateLimit{
		Domain:          ratelimit.Domain,
		Timeout:         dur(r.Timeout),
		FailureModeDeny: r.FailureModeDeny,
		StatPrefix:      r.ID,
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{
				TargetUri: service, StatPrefix: "mast_ratelimit"}}},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
		RateLimits: []*routev3.RateLimit{{Actions: descriptorActions(r, true)}},
	}
	if r.Headers {
		c.EnableXRatelimitHeaders = rlhttpv3.RateLimit_DRAFT_VERSION_03
	}
	return c
}

func tokenBucket(max int64, window time.Duration) *typev3.TokenBucket {
	return &typev3.TokenBucket{MaxTokens: uint32(max), TokensPerFill: u32(uint32(max)), FillInterval: dur(window)}
}

func full() *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
}

func localRateLimit(r *ratelimit.Rule) *localrlv3.LocalRateLimit {
	c := &localrlv3.LocalRateLimit{
		StatPrefix:     r.ID,
		TokenBucket:    tokenBucket(r.Limit.MaxAmount, r.Limit.ValidDuration),
		FilterEnabled:  full(),
		FilterEnforced: full(),
	}
	if r.Headers {
		c.EnableXRatelimitHeaders = rlcommonv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03
	}
	// Each override is a descriptor of the dimensions it names, built by
	// its own rate_limits entry; a request it matches takes its bucket
	// instead of the default one.
	for _, o := range r.Limit.Overrides {
		var entries []*rlcommonv3.RateLimitDescriptor_Entry
		var acts []*routev3.RateLimit_Action
		all := descriptorActions(r, false)
		for i, d := range r.Dimensions {
			if v, ok := o.Dimensions[d.GetName()]; ok {
				entries = append(entries, &rlcommonv3.RateLimitDescriptor_Entry{Key: ratelimit.DescriptorKey(d), Value: v})
				acts = append(acts, all[i])
			}
		}
		w := o.ValidDuration
		if w <= 0 {
			w = r.Limit.ValidDuration
		}
		c.Descriptors = append(c.Descriptors, &rlcommonv3.LocalRateLimitDescriptor{Entries: entries, TokenBucket: tokenBucket(o.MaxAmount, w)})
		c.RateLimits = append(c.RateLimits, &routev3.RateLimit{Actions: acts})
	}
	if len(c.Descriptors) > 0 {
		c.AlwaysConsumeDefaultTokenBucket = boolv(false)
	}
	return c
}

func netLocalRateLimit(r *ratelimit.Rule) *netlocalrlv3.LocalRateLimit {
	return &netlocalrlv3.LocalRateLimit{StatPrefix: r.ID, TokenBucket: tokenBucket(r.Limit.MaxAmount, r.Limit.ValidDuration)}
}
