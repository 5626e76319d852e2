// Package cors is Envoy's CORS HTTP filter (envoy.filters.http.cors) with
// the per-route CorsPolicy (typed_per_filter_config) that Istio's
// VirtualService corsPolicy becomes: preflight requests from an allowed
// origin are answered locally; other requests from an allowed origin get
// the access-control-* response headers.
package cors

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// Name is the filter's well-known name.
const Name = "envoy.filters.http.cors"

// Type URLs of the filter's config and of the per-route policy.
const (
	TypeURL       = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
	PolicyTypeURL = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
)

// Policy is a compiled CorsPolicy.
type Policy struct {
	Origins                   []match.String
	AllowMethods              string
	AllowHeaders              string
	ExposeHeaders             string
	MaxAge                    string
	AllowCredentials          bool
	AllowPrivateNetworkAccess bool
	// IgnoreUnmatchedPreflights answers preflights from origins the policy
	// does not allow here, without CORS headers, instead of forwarding them
	// (forward_not_matching_preflights false; Istio's unmatchedPreflights IGNORE).
	IgnoreUnmatchedPreflights bool
}

// Filter applies the matched route's CORS policy.
type Filter struct{ name string }

var (
	_ filter.HTTPFilter     = (*Filter)(nil)
	_ filter.ResponseFilter = (*Filter)(nil)
	_ filter.IdleFilter     = (*Filter)(nil)
)

// Field numbers of CorsPolicy and the messages it holds.
const (
	cpOrigins        = 1
	cpMethods        = 2
	cpHeaders        = 3
	cpExpose         = 4
	cpMaxAge         = 5
	cpCredentials    = 6
	cpFilterEnabled  = 7
	cpShadowEnabled  = 8
	cpPrivateNetwork = 9
	cpForwardUnmatch = 10
	boolValue        = 1 // google.protobuf.BoolValue
	rfpDefault       = 1 // RuntimeFractionalPercent.default_value
	fpNumerator      = 1 // FractionalPercent
	fpDenominator    = 2
)

// New parses the filter's (empty) typed config.
func New(name string, a *anypb.Any) (filter.HTTPFilter, error) {
	if _, err := pbwire.Decode(wireTable, wireCors, a.GetValue()); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return &Filter{name: name}, nil
}

// PerRoute parses a route's CorsPolicy.
func PerRoute(a *anypb.Any) (any, error) {
	p, err := pbwire.Decode(wireTable, wireCorsPolicy, a.GetValue())
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return parse(p)
}

// Parse compiles a CorsPolicy from its wire bytes; fields the filter does
// not honour are errors.
func Parse(b []byte) (*Policy, error) {
	p, err := pbwire.Decode(wireTable, wireCorsPolicy, b)
	if err != nil {
		return nil, fmt.Errorf("cors policy: %w", err)
	}
	return parse(p)
}

func parse(p *pbwire.Msg) (*Policy, error) {
	if p.Has(cpFilterEnabled) && !full(p.Sub(cpFilterEnabled).Sub(rfpDefault)) {
		return nil, fmt.Errorf("filter_enabled: only 100%% is supported")
	}
	if p.Has(cpShadowEnabled) {
		return nil, fmt.Errorf("shadow_enabled: not supported")
	}
	out := &Policy{AllowMethods: p.Str(cpMethods), AllowHeaders: p.Str(cpHeaders), ExposeHeaders: p.Str(cpExpose),
		MaxAge: p.Str(cpMaxAge), AllowCredentials: p.Sub(cpCredentials).Bool(boolValue),
		AllowPrivateNetworkAccess: p.Sub(cpPrivateNetwork).Bool(boolValue)}
	if p.Has(cpForwardUnmatch) && !p.Sub(cpForwardUnmatch).Bool(boolValue) {
		out.IgnoreUnmatchedPreflights = true
	}
	for i, o := range p.Subs(cpOrigins) {
		m, err := match.StringWire(o)
		if err != nil {
			return nil, fmt.Errorf("allow_origin_string_match[%d]: %w", i, err)
		}
		out.Origins = append(out.Origins, m)
	}
	return out, nil
}

// full reports whether a FractionalPercent (nil: absent) is 100%.
func full(p *pbwire.Msg) bool {
	if p == nil {
		return true
	}
	var d uint32
	switch p.I32(fpDenominator) {
	case 0: // HUNDRED
		d = 100
	case 1: // TEN_THOUSAND
		d = 10_000
	case 2: // MILLION
		d = 1_000_000
	}
	return d != 0 && p.U32(fpNumerator) >= d
}

// originAllowed is Envoy's check: a matcher matching the origin, or "*".
func (p *Policy) originAllowed(origin string) bool {
	for i := range p.Origins {
		if p.Origins[i].Match(origin) || p.Origins[i].Match("*") {
			return true
		}
	}
	return false
}

// policy returns the route's policy and the request's origin when the
// request is a CORS request the policy allows.
func (f *Filter) policy(r *filter.Request) (*Policy, string) {
	if r.Route == nil {
		return nil, ""
	}
	p, _ := r.Route.PerFilterConfig(f.name).(*Policy)
	if p == nil {
		return nil, ""
	}
	origin, ok := r.Header("origin")
	if !ok || origin == "" || !p.originAllowed(origin) {
		return nil, ""
	}
	return p, origin
}

// IdleOn reports whether rc has no CORS policy: then the filter neither
// answers preflights nor adds response headers on it.
func (f *Filter) IdleOn(rc filter.RouteConfig) bool {
	p, _ := rc.PerFilterConfig(f.name).(*Policy)
	return p == nil
}

// DecodeHeaders answers preflight requests from allowed origins.
func (f *Filter) DecodeHeaders(_ context.Context, r *filter.Request) filter.Status {
	if r.Method != "OPTIONS" {
		return filter.Continue
	}
	if m, _ := r.Header("access-control-request-method"); m == "" {
		return filter.Continue
	}
	p, origin := f.policy(r)
	if p == nil {
		if f.ignoresUnmatched(r) {
			r.LocalReply(200, "", "")
			return filter.Stop
		}
		return filter.Continue
	}
	h := headers.List{{Name: "access-control-allow-origin", Value: origin}}
	if p.AllowCredentials {
		h = append(h, headers.Field{Name: "access-control-allow-credentials", Value: "true"})
	}
	if p.AllowMethods != "" {
		h = append(h, headers.Field{Name: "access-control-allow-methods", Value: p.AllowMethods})
	}
	if p.AllowHeaders != "" {
		h = append(h, headers.Field{Name: "access-control-allow-headers", Value: p.AllowHeaders})
	}
	if p.MaxAge != "" {
		h = append(h, headers.Field{Name: "access-control-max-age", Value: p.MaxAge})
	}
	if v, _ := r.Header("access-control-request-private-network"); p.AllowPrivateNetworkAccess && strings.EqualFold(v, "true") {
		h = append(h, headers.Field{Name: "access-control-allow-private-network", Value: "true"})
	}
	r.LocalReply(200, "", "", h...)
	return filter.Stop
}

// ignoresUnmatched reports whether the route's policy answers a preflight
// from an origin it does not allow itself (and without CORS headers).
func (f *Filter) ignoresUnmatched(r *filter.Request) bool {
	if r.Route == nil {
		return false
	}
	p, _ := r.Route.PerFilterConfig(f.name).(*Policy)
	if p == nil || !p.IgnoreUnmatchedPreflights {
		return false
	}
	origin, _ := r.Header("origin")
	return origin != ""
}

// EncodeHeaders adds the CORS response headers for allowed origins.
func (f *Filter) EncodeHeaders(r *filter.Request, _ int, h *headers.List) {
	p, origin := f.policy(r)
	if p == nil {
		return
	}
	if r.Method == "OPTIONS" {
		if m, _ := r.Header("access-control-request-method"); m != "" {
			return // the preflight answer carries its own headers
		}
	}
	h.Set("access-control-allow-origin", origin)
	if p.AllowCredentials {
		h.Set("access-control-allow-credentials", "true")
	}
	if p.ExposeHeaders != "" {
		h.Set("access-control-expose-headers", p.ExposeHeaders)
	}
}
