package xdsparse

import (
	"fmt"
	"strconv"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/matcher/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// parseOutlierErrorMatcher reads HttpProtocolOptions'
// outlier_detection.error_matcher in the shape istiod and mastd generate
// for outlierDetectionHttpErrorCodes: a response-headers match of one
// :status exact value, or an or_match of such matches. It returns the
// status codes; any other matcher is refused by name.
func parseOutlierErrorMatcher(m *matcherv3.MatchPredicate) ([]int, error) {
	const field = "outlier_detection.error_matcher"
	one := func(p *matcherv3.MatchPredicate) (int, error) {
		hm := p.GetHttpResponseHeadersMatch()
		if hm == nil || len(hm.GetHeaders()) != 1 {
			return 0, fmt.Errorf("%s: only http_response_headers_match rules of one :status header (or their or_match) are supported", field)
		}
		h := hm.GetHeaders()[0]
		if h.GetName() != ":status" || h.GetInvertMatch() || h.GetTreatMissingHeaderAsEmpty() {
			return 0, fmt.Errorf("%s: header %q: only a :status exact match is supported", field, h.GetName())
		}
		v := h.GetExactMatch()
		if sm, ok := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_StringMatch); ok {
			if sm.StringMatch.GetIgnoreCase() {
				return 0, fmt.Errorf("%s: :status: ignore_case is not supported", field)
			}
			v = sm.StringMatch.GetExact()
		} else if _, ok := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_ExactMatch); !ok {
			return 0, fmt.Errorf("%s: :status: only an exact match is supported", field)
		}
		code, err := strconv.Atoi(v)
		if err != nil || code < 100 || code > 599 {
			return 0, fmt.Errorf("%s: :status %q: want a status code 100-599", field, v)
		}
		return code, nil
	}
	var rules []*matcherv3.MatchPredicate
	if om := m.GetOrMatch(); om != nil {
		rules = om.GetRules()
	} else {
		rules = []*matcherv3.MatchPredicate{m}
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
