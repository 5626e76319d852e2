package adaptiveconcurrency

import (
	"errors"
	"fmt"

	acv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/adaptive_concurrency/v3"
)

// The generated decoder this package used before pbwire (its parse, given
// a decoded message, unchanged): the oracle of the wire decoder's
// differential tests.

func parseGenerated(m *acv3.AdaptiveConcurrency) (Config, error) {
	c := Config{Percentile: 50, MaxLimit: 1000, RequestCount: 50, Jitter: 15, MinConcurrency: 3, Buffer: 25, Status: 503}
	if m.GetEnabled() != nil {
		return c, errors.New("enabled: runtime feature flags are not supported (leave it unset: the filter is on)")
	}
	if s := m.GetConcurrencyLimitExceededStatus(); s != nil {
		if c.Status = int(s.GetCode()); c.Status < 400 {
			c.Status = 503
		}
	}
	g := m.GetGradientControllerConfig()
	if g == nil {
		return c, errors.New("gradient_controller_config: required (the only controller)")
	}
	if p := g.GetSampleAggregatePercentile(); p != nil {
		if c.Percentile = p.GetValue(); c.Percentile < 0 || c.Percentile > 100 {
			return c, fmt.Errorf("sample_aggregate_percentile %v: must be in 0..100", c.Percentile)
		}
	}
	lp := g.GetConcurrencyLimitParams()
	if lp == nil || lp.GetConcurrencyUpdateInterval() == nil {
		return c, errors.New("concurrency_limit_params.concurrency_update_interval: required")
	}
	if c.UpdateInterval = lp.GetConcurrencyUpdateInterval().AsDuration(); c.UpdateInterval <= 0 {
		return c, errors.New("concurrency_limit_params.concurrency_update_interval: must be > 0")
	}
	if v := lp.GetMaxConcurrencyLimit(); v != nil {
		c.MaxLimit = v.GetValue()
	}
	rp := g.GetMinRttCalcParams()
	if rp == nil {
		return c, errors.New("min_rtt_calc_params: required")
	}
	if d := rp.GetFixedValue(); d != nil {
		if c.FixedMinRTT = d.AsDuration(); c.FixedMinRTT <= 0 {
			return c, errors.New("min_rtt_calc_params.fixed_value: must be > 0")
		}
	} else if d := rp.GetInterval(); d != nil {
		if c.MinRTTInterval = d.AsDuration(); c.MinRTTInterval <= 0 {
			return c, errors.New("min_rtt_calc_params.interval: must be > 0")
		}
	} else {
		return c, errors.New("min_rtt_calc_params: interval or fixed_value required")
	}
	if v := rp.GetRequestCount(); v != nil {
		if c.RequestCount = v.GetValue(); c.RequestCount == 0 {
			return c, errors.New("min_rtt_calc_params.request_count: must be > 0")
		}
	}
	if p := rp.GetJitter(); p != nil {
		c.Jitter = p.GetValue()
	}
	if v := rp.GetMinConcurrency(); v != nil {
		if c.MinConcurrency = v.GetValue(); c.MinConcurrency == 0 {
			return c, errors.New("min_rtt_calc_params.min_concurrency: must be > 0")
		}
	}
	if p := rp.GetBuffer(); p != nil {
		c.Buffer = p.GetValue()
	}
	c.MinLimit = c.MinConcurrency
	if v := lp.GetMinConcurrencyLimit(); v != nil {
		c.MinLimit = max(v.GetValue(), 1)
	}
	if c.MaxLimit < c.MinLimit {
		return c, fmt.Errorf("concurrency_limit_params.max_concurrency_limit %d: under the minimum %d", c.MaxLimit, c.MinLimit)
	}
	return c, nil
}
