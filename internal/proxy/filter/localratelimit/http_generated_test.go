package localratelimit

import (
	"errors"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction"
	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction/rlactiongen"
)

// The generated decoder of the HTTP filter before pbwire: the oracle of
// the wire decoder's differential tests. Changed since: a decode error is
// prefixed "decode <type URL>: ", and append_action and
// enable_x_ratelimit_headers are printed as numbers (the wire decoder has
// no enum names).

func parseGenerated(a *anypb.Any, now func() time.Time) (*Limiter, error) {
	var c localrlv3.LocalRateLimit
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	if err := filter.CheckFields("", &c, "stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
		"request_headers_to_add_when_not_enforced", "response_headers_to_add", "descriptors", "stage",
		"enable_x_ratelimit_headers", "always_consume_default_token_bucket", "rate_limits"); err != nil {
		return nil, err
	}
	if c.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: required")
	}
	if c.GetStage() != 0 {
		return nil, errors.New("stage: only stage 0 is supported")
	}
	l := &Limiter{status: 429, consumeDefault: c.AlwaysConsumeDefaultTokenBucket == nil || c.GetAlwaysConsumeDefaultTokenBucket().GetValue()}
	if s := c.GetStatus(); s != nil {
		if s.GetCode() < 400 {
			return nil, fmt.Errorf("status: %d is not an error status", s.GetCode())
		}
		l.status = int(s.GetCode())
	}
	var err error
	if c.GetTokenBucket() != nil {
		if l.def, err = newBucket(c.GetTokenBucket(), "token_bucket", now); err != nil {
			return nil, err
		}
	}
	if l.enabled, err = parseFractionGenerated(c.GetFilterEnabled(), "filter_enabled"); err != nil {
		return nil, err
	}
	if l.enforced, err = parseFractionGenerated(c.GetFilterEnforced(), "filter_enforced"); err != nil {
		return nil, err
	}
	if l.notEnforcedHdrs, err = parseHeaderOpsGenerated(c.GetRequestHeadersToAddWhenNotEnforced(), "request_headers_to_add_when_not_enforced"); err != nil {
		return nil, err
	}
	if l.responseHdrs, err = parseHeaderOpsGenerated(c.GetResponseHeadersToAdd(), "response_headers_to_add"); err != nil {
		return nil, err
	}
	switch c.GetEnableXRatelimitHeaders() {
	case rlcommonv3.XRateLimitHeadersRFCVersion_OFF:
	case rlcommonv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03:
		l.headers = true
	default:
		return nil, fmt.Errorf("enable_x_ratelimit_headers %d: not supported", c.GetEnableXRatelimitHeaders())
	}
	for i, d := range c.GetDescriptors() {
		p := fmt.Sprintf("descriptors[%d]", i)
		if err := filter.CheckFields("", d, "entries", "token_bucket"); err != nil {
			return nil, fmt.Errorf("%s.%w", p, err)
		}
		var ds descriptor
		for _, e := range d.GetEntries() {
			if e.GetValue() == "" {
				return nil, fmt.Errorf("%s.entries: an empty value (dynamic descriptors) is not supported", p)
			}
			ds.entries = append(ds.entries, rlaction.Entry{Key: e.GetKey(), Value: e.GetValue()})
		}
		if len(ds.entries) == 0 {
			return nil, fmt.Errorf("%s.entries: empty", p)
		}
		if ds.b, err = newBucket(d.GetTokenBucket(), p+".token_bucket", now); err != nil {
			return nil, err
		}
		l.descriptors = append(l.descriptors, ds)
	}
	if l.actions, err = rlactiongen.Parse("rate_limits", c.GetRateLimits()); err != nil {
		return nil, err
	}
	if len(l.descriptors) > 0 && len(l.actions) == 0 {
		return nil, errors.New("descriptors: need the filter's rate_limits (route-level rate_limits are not supported)")
	}
	if l.def == nil && l.enabled.num > 0 && len(l.descriptors) == 0 {
		return nil, errors.New("token_bucket: required when the filter is enabled")
	}
	return l, nil
}

func parseFractionGenerated(f *corev3.RuntimeFractionalPercent, field string) (fraction, error) {
	if f == nil {
		return fraction{0, 100}, nil // Envoy: absent means 0% (disabled / not enforced)
	}
	if err := filter.CheckFields("", f, "default_value", "runtime_key"); err != nil {
		return fraction{}, fmt.Errorf("%s.%w", field, err)
	}
	d := f.GetDefaultValue()
	var den uint32
	switch d.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		den = 10_000
	case typev3.FractionalPercent_MILLION:
		den = 1_000_000
	default:
		return fraction{}, fmt.Errorf("%s.default_value.denominator: unknown", field)
	}
	return fraction{num: min(d.GetNumerator(), den), den: den}, nil
}

func parseHeaderOpsGenerated(ops []*corev3.HeaderValueOption, field string) ([]headerOp, error) {
	var out []headerOp
	for i, o := range ops {
		p := fmt.Sprintf("%s[%d]", field, i)
		if err := filter.CheckFields("", o, "header", "append_action"); err != nil {
			return nil, fmt.Errorf("%s.%w", p, err)
		}
		if err := filter.CheckFields("", o.GetHeader(), "key", "value"); err != nil {
			return nil, fmt.Errorf("%s.header.%w", p, err)
		}
		h := headerOp{name: lower(o.GetHeader().GetKey()), value: o.GetHeader().GetValue()}
		if h.name == "" {
			return nil, fmt.Errorf("%s.header.key: empty", p)
		}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.overwrite = true
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			h.ifAbsent = true
		default:
			return nil, fmt.Errorf("%s.append_action %d: not supported", p, o.GetAppendAction())
		}
		out = append(out, h)
	}
	return out, nil
}

func newBucket(tb *typev3.TokenBucket, field string, now func() time.Time) (*bucket, error) {
	if tb == nil {
		return nil, fmt.Errorf("%s: required", field)
	}
	s := bucketSpec{max: tb.GetMaxTokens(), per: 1, interval: tb.GetFillInterval().AsDuration()}
	if tb.GetTokensPerFill() != nil {
		s.perSet, s.per = true, tb.GetTokensPerFill().GetValue()
	}
	s.intervalOK = tb.GetFillInterval() != nil && tb.GetFillInterval().CheckValid() == nil
	return s.bucket(field, now)
}
