package xdsparse

import (
	"fmt"
	"strconv"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// Fields of envoy.config.common.matcher.v3.MatchPredicate and the header
// matchers inside.
const (
	mpOrMatch, mpResponseHeadersMatch                  = 1, 7
	matchSetRules, headersMatchHeaders                 = 1, 1
	hmName, hmExactMatch, hmInvertMatch, hmStringMatch = 1, 4, 8, 13
	hmTreatMissingAsEmpty, smExact, smIgnoreCase       = 14, 1, 6
)

// parseOutlierErrorMatcher reads HttpProtocolOptions'
// outlier_detection.error_matcher in the shape istiod and mastd generate
// for outlierDetectionHttpErrorCodes: a response-headers match of one
// :status exact value, or an or_match of such matches. It returns the
// status codes; any other matcher is refused by name.
func parseOutlierErrorMatcher(m *pbwire.Msg) ([]int, error) {
	const field = "outlier_detection.error_matcher"
	one := func(p *pbwire.Msg) (int, error) {
		var hs []*pbwire.Msg
		if p.Has(mpResponseHeadersMatch) {
			hs = p.Sub(mpResponseHeadersMatch).Subs(headersMatchHeaders)
		}
		if len(hs) != 1 {
			return 0, fmt.Errorf("%s: only http_response_headers_match rules of one :status header (or their or_match) are supported", field)
		}
		h := hs[0]
		if name := h.Str(hmName); name != ":status" || h.U64(hmInvertMatch) != 0 || h.U64(hmTreatMissingAsEmpty) != 0 {
			return 0, fmt.Errorf("%s: header %q: only a :status exact match is supported", field, name)
		}
		var v string
		switch {
		case h.Has(hmStringMatch):
			sm := h.Sub(hmStringMatch)
			if sm.U64(smIgnoreCase) != 0 {
				return 0, fmt.Errorf("%s: :status: ignore_case is not supported", field)
			}
			v = sm.Str(smExact) // "" unless the pattern is exact
		case h.Has(hmExactMatch):
			v = h.Str(hmExactMatch)
		default:
			return 0, fmt.Errorf("%s: :status: only an exact match is supported", field)
		}
		code, err := strconv.Atoi(v)
		if err != nil || code < 100 || code > 599 {
			return 0, fmt.Errorf("%s: :status %q: want a status code 100-599", field, v)
		}
		return code, nil
	}
	rules := []*pbwire.Msg{m}
	if m.Has(mpOrMatch) {
		om := m.Sub(mpOrMatch)
		rules = om.Subs(matchSetRules)
	}
	codes := make([]int, 0, len(rules))
	for _, r := range rules {
		c, err := one(r)
		if err != nil {
			return nil, err
		}
		codes = append(codes, c)
	}
	return codes, nil
}
