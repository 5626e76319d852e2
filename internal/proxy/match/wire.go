package match

import (
	"fmt"
	"strings"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// Field numbers of envoy.type.matcher.v3.StringMatcher.
const (
	smExact      = 1
	smPrefix     = 2
	smSuffix     = 3
	smSafeRegex  = 5
	smIgnoreCase = 6
	smContains   = 7
	smCustom     = 8
)

// Field numbers of envoy.config.route.v3.HeaderMatcher.
const (
	hmName           = 1
	hmExact          = 4
	hmSafeRegex      = 11
	hmRange          = 6
	hmPresent        = 7
	hmPrefix         = 9
	hmSuffix         = 10
	hmContains       = 12
	hmString         = 13
	hmInvert         = 8
	hmMissingAsEmpty = 14
)

// Field numbers of envoy.type.matcher.v3.RegexMatcher and
// envoy.type.v3.Int64Range.
const (
	regexRegex = 2
	rangeStart = 1
	rangeEnd   = 2
)

// DecodeString decodes and compiles an envoy.type.matcher.v3.StringMatcher
// from its wire bytes.
func DecodeString(b []byte) (String, error) {
	m, err := pbwire.Decode(wireTable, wireStringMatcher, b)
	if err != nil {
		return String{}, fmt.Errorf("string matcher: %w", err)
	}
	return StringWire(m)
}

// DecodeHeader decodes and compiles an envoy.config.route.v3.HeaderMatcher
// from its wire bytes.
func DecodeHeader(b []byte) (Header, error) {
	m, err := pbwire.Decode(wireTable, wireHeaderMatcher, b)
	if err != nil {
		return Header{}, fmt.Errorf("header matcher: %w", err)
	}
	return HeaderWire(m)
}

// StringWire is ParseString over a decoded StringMatcher (from any table
// that has the type, so that an enclosing message decodes once).
func StringWire(s *pbwire.Msg) (String, error) {
	m := String{IgnoreCase: s.Bool(smIgnoreCase)}
	switch s.Oneof(smExact, smPrefix, smSuffix, smContains, smSafeRegex, smCustom) {
	case smExact:
		m.Kind, m.Value = StrExact, s.Str(smExact)
	case smPrefix:
		m.Kind, m.Value = StrPrefix, s.Str(smPrefix)
	case smSuffix:
		m.Kind, m.Value = StrSuffix, s.Str(smSuffix)
	case smContains:
		m.Kind, m.Value = StrContains, s.Str(smContains)
	case smSafeRegex:
		expr := s.Sub(smSafeRegex).Str(regexRegex)
		if m.IgnoreCase {
			expr = "(?i)" + expr
		}
		re, err := CompileRegex(expr, true)
		if err != nil {
			return m, err
		}
		m.Kind, m.Regex = StrRegex, re
	case smCustom:
		return m, fmt.Errorf("string matcher: pattern custom not supported")
	default:
		return m, fmt.Errorf("string matcher: no pattern")
	}
	return m, nil
}

// HeaderWire is ParseHeader over a decoded HeaderMatcher.
func HeaderWire(h *pbwire.Msg) (Header, error) {
	name := h.Str(hmName)
	if name == "" {
		return Header{}, fmt.Errorf("name is empty")
	}
	hm := Header{Name: strings.ToLower(name), Invert: h.Bool(hmInvert), TreatMissingAsEmpty: h.Bool(hmMissingAsEmpty)}
	if hm.Name == ":authority" {
		hm.Name = "host"
	}
	var err error
	switch h.Oneof(hmExact, hmPrefix, hmSuffix, hmContains, hmSafeRegex, hmPresent, hmRange, hmString) {
	case hmExact:
		hm.Str = String{Kind: StrExact, Value: h.Str(hmExact)}
	case hmPrefix:
		hm.Str = String{Kind: StrPrefix, Value: h.Str(hmPrefix)}
	case hmSuffix:
		hm.Str = String{Kind: StrSuffix, Value: h.Str(hmSuffix)}
	case hmContains:
		hm.Str = String{Kind: StrContains, Value: h.Str(hmContains)}
	case hmSafeRegex:
		re, err := CompileRegex(h.Sub(hmSafeRegex).Str(regexRegex), true)
		if err != nil {
			return hm, err
		}
		hm.Str = String{Kind: StrRegex, Regex: re}
	case hmPresent:
		hm.Present, hm.PresentValue = true, h.Bool(hmPresent)
	case hmRange:
		rg := h.Sub(hmRange)
		hm.IsRange, hm.RangeStart, hm.RangeEnd = true, rg.I64(rangeStart), rg.I64(rangeEnd)
	case hmString:
		if hm.Str, err = StringWire(h.Sub(hmString)); err != nil {
			return hm, err
		}
	default:
		hm.Present, hm.PresentValue = true, true
	}
	return hm, nil
}
