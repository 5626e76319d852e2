package cors

import (
	"fmt"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/match/matchgen"
)

// The generated decoder this package used before pbwire: the oracle of
// the wire decoder's differential tests.

// New parses the filter's (empty) typed config.
func newGenerated(name string, a *anypb.Any) (*Filter, error) {
	var c corsv3.Cors
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return &Filter{name: name}, nil
}

// PerRoute parses a route's CorsPolicy.
func perRouteGenerated(a *anypb.Any) (any, error) {
	var p corsv3.CorsPolicy
	if err := a.UnmarshalTo(&p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return parseGenerated(&p)
}

// Parse compiles a CorsPolicy; fields the filter does not honour are errors.
func parseGenerated(p *corsv3.CorsPolicy) (*Policy, error) {
	if fe := p.GetFilterEnabled(); fe != nil && !fullGenerated(fe.GetDefaultValue()) {
		return nil, fmt.Errorf("filter_enabled: only 100%% is supported")
	}
	if p.GetShadowEnabled() != nil {
		return nil, fmt.Errorf("shadow_enabled: not supported")
	}
	out := &Policy{AllowMethods: p.GetAllowMethods(), AllowHeaders: p.GetAllowHeaders(), ExposeHeaders: p.GetExposeHeaders(),
		MaxAge: p.GetMaxAge(), AllowCredentials: p.GetAllowCredentials().GetValue(),
		AllowPrivateNetworkAccess: p.GetAllowPrivateNetworkAccess().GetValue()}
	if f := p.GetForwardNotMatchingPreflights(); f != nil && !f.GetValue() {
		out.IgnoreUnmatchedPreflights = true
	}
	for i, o := range p.GetAllowOriginStringMatch() {
		m, err := matchgen.ParseString(o)
		if err != nil {
			return nil, fmt.Errorf("allow_origin_string_match[%d]: %w", i, err)
		}
		out.Origins = append(out.Origins, m)
	}
	return out, nil
}

func fullGenerated(p *typev3.FractionalPercent) bool {
	if p == nil {
		return true
	}
	d := map[typev3.FractionalPercent_DenominatorType]uint32{typev3.FractionalPercent_HUNDRED: 100,
		typev3.FractionalPercent_TEN_THOUSAND: 10_000, typev3.FractionalPercent_MILLION: 1_000_000}[p.GetDenominator()]
	return d != 0 && p.GetNumerator() >= d
}
