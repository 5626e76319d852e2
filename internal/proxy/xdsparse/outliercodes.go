package xdsparse

import (
	"fmt"
	"strconv"
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
func parseOutlierErrorMatcher(m *wireMsg) ([]int, error) {
	const field = "outlier_detection.error_matcher"
	one := func(p *wireMsg) (int, error) {
		var hs []*wireMsg
		if p.has(mpResponseHeadersMatch) {
			hs = p.sub(mpResponseHeadersMatch).subs(headersMatchHeaders)
		}
		if len(hs) != 1 {
			return 0, fmt.Errorf("%s: only http_response_headers_match rules of one :status header (or their or_match) are supported", field)
		}
		h := hs[0]
		if name := h.str(hmName); name != ":status" || h.u64(hmInvertMatch) != 0 || h.u64(hmTreatMissingAsEmpty) != 0 {
			return 0, fmt.Errorf("%s: header %q: only a :status exact match is supported", field, name)
		}
		var v string
		switch {
		case h.has(hmStringMatch):
			sm := h.sub(hmStringMatch)
			if sm.u64(smIgnoreCase) != 0 {
				return 0, fmt.Errorf("%s: :status: ignore_case is not supported", field)
			}
			v = sm.str(smExact) // "" unless the pattern is exact
		case h.has(hmExactMatch):
			v = h.str(hmExactMatch)
		default:
			return 0, fmt.Errorf("%s: :status: only an exact match is supported", field)
		}
		code, err := strconv.Atoi(v)
		if err != nil || code < 100 || code > 599 {
			return 0, fmt.Errorf("%s: :status %q: want a status code 100-599", field, v)
		}
		return code, nil
	}
	rules := []*wireMsg{m}
	if m.has(mpOrMatch) {
		om := m.sub(mpOrMatch)
		rules = om.subs(matchSetRules)
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
