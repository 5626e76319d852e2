// Package matchgen compiles Envoy's string and header matchers from
// go-control-plane's generated messages. mast-proxy decodes them from the
// wire (match.DecodeString, match.DecodeHeader); this package is the
// reference those decoders are tested against, and only tests import it, so
// the generated route and matcher packages stay out of the proxy's binary.
package matchgen

import (
	"fmt"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/mast-mesh/mast/internal/proxy/match"
)

// ParseString compiles a StringMatcher.
func ParseString(s *matcherv3.StringMatcher) (match.String, error) {
	m := match.String{IgnoreCase: s.GetIgnoreCase()}
	switch p := s.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		m.Kind, m.Value = match.StrExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		m.Kind, m.Value = match.StrPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		m.Kind, m.Value = match.StrSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		m.Kind, m.Value = match.StrContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		expr := p.SafeRegex.GetRegex()
		if m.IgnoreCase {
			expr = "(?i)" + expr
		}
		re, err := match.CompileRegex(expr, true)
		if err != nil {
			return m, err
		}
		m.Kind, m.Regex = match.StrRegex, re
	case *matcherv3.StringMatcher_Custom:
		return m, fmt.Errorf("string matcher: pattern custom not supported")
	default:
		return m, fmt.Errorf("string matcher: no pattern")
	}
	return m, nil
}

// ParseHeader compiles a HeaderMatcher.
func ParseHeader(h *routev3.HeaderMatcher) (match.Header, error) {
	if h.GetName() == "" {
		return match.Header{}, fmt.Errorf("name is empty")
	}
	hm := match.Header{Name: strings.ToLower(h.GetName()), Invert: h.GetInvertMatch(), TreatMissingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	if hm.Name == ":authority" {
		hm.Name = "host"
	}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_ExactMatch:
		hm.Str = match.String{Kind: match.StrExact, Value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		hm.Str = match.String{Kind: match.StrPrefix, Value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		hm.Str = match.String{Kind: match.StrSuffix, Value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		hm.Str = match.String{Kind: match.StrContains, Value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := match.CompileRegex(s.SafeRegexMatch.GetRegex(), true)
		if err != nil {
			return hm, err
		}
		hm.Str = match.String{Kind: match.StrRegex, Regex: re}
	case *routev3.HeaderMatcher_PresentMatch:
		hm.Present, hm.PresentValue = true, s.PresentMatch
	case *routev3.HeaderMatcher_RangeMatch:
		hm.IsRange, hm.RangeStart, hm.RangeEnd = true, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	case *routev3.HeaderMatcher_StringMatch:
		if hm.Str, err = ParseString(s.StringMatch); err != nil {
			return hm, err
		}
	case nil:
		hm.Present, hm.PresentValue = true, true
	default:
		return hm, fmt.Errorf("matcher %T not supported", s)
	}
	return hm, nil
}
