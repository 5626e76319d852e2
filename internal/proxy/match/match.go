// Package match compiles Envoy's string and header matchers
// (envoy.type.matcher.v3.StringMatcher, envoy.config.route.v3.HeaderMatcher)
// into small structs that match without allocating; routing, CORS and RBAC
// share them.
package match

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// StringKind says how a string matcher compares.
type StringKind uint8

// String matcher kinds.
const (
	StrExact StringKind = iota
	StrPrefix
	StrSuffix
	StrContains
	StrRegex
	StrPresent
)

// String is a compiled envoy.type.matcher.v3.StringMatcher.
type String struct {
	Kind       StringKind
	Value      string
	IgnoreCase bool
	Regex      *regexp.Regexp
}

// Match reports whether s matches.
func (m *String) Match(s string) bool {
	switch m.Kind {
	case StrExact:
		if m.IgnoreCase {
			return headers.EqualFold(s, m.Value)
		}
		return s == m.Value
	case StrPrefix:
		if m.IgnoreCase {
			return headers.HasPrefixFold(s, m.Value)
		}
		return strings.HasPrefix(s, m.Value)
	case StrSuffix:
		if m.IgnoreCase {
			return headers.HasSuffixFold(s, m.Value)
		}
		return strings.HasSuffix(s, m.Value)
	case StrContains:
		if m.IgnoreCase {
			return headers.ContainsFold(s, m.Value)
		}
		return strings.Contains(s, m.Value)
	case StrRegex:
		return m.Regex.MatchString(s)
	case StrPresent:
		return true
	}
	return false
}

// CompileRegex compiles an RE2 expression; anchored makes it match the whole
// input as Envoy's safe_regex does.
func CompileRegex(expr string, anchored bool) (*regexp.Regexp, error) {
	if len(expr) > 4096 {
		return nil, fmt.Errorf("regex: longer than 4096 bytes")
	}
	if anchored {
		expr = `^(?:` + expr + `)$`
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	return re, nil
}

// Header is a compiled envoy.config.route.v3.HeaderMatcher.
type Header struct {
	Name                 string // lower-case; ":authority" is "host"
	Str                  String
	Present              bool // present_match (value in PresentValue)
	PresentValue         bool
	RangeStart, RangeEnd int64
	IsRange              bool
	Invert               bool
	TreatMissingAsEmpty  bool
}

// MatchValue evaluates the matcher on a header's value (ok: the header is
// present; several values are joined with "," by the caller, as Envoy does).
func (m *Header) MatchValue(v string, ok bool) bool {
	if !ok && m.TreatMissingAsEmpty {
		v, ok = "", true
	}
	var res bool
	switch {
	case m.Present:
		res = ok == m.PresentValue
		if !ok && !m.PresentValue {
			// present_match false on a missing header is a match
			res = true
		}
	case !ok:
		// A missing header never matches, even inverted (Envoy semantics).
		return false
	case m.IsRange:
		n, err := strconv.ParseInt(v, 10, 64)
		res = err == nil && n >= m.RangeStart && n < m.RangeEnd
	default:
		res = m.Str.Match(v)
	}
	return res != m.Invert
}
