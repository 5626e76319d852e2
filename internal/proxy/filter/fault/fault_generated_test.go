package fault

import (
	"fmt"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// The generated decoder this package used before pbwire: the oracle of
// the wire decoder's differential tests. One change since: a non-empty
// FaultAbort.response_body is refused (it was silently ignored).

// ParseAny decodes and compiles an HTTPFault.
func parseAnyGenerated(a *anypb.Any) (*Config, error) {
	var hf faultv3.HTTPFault
	if err := a.UnmarshalTo(&hf); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return parseGenerated(&hf)
}

// Parse compiles an HTTPFault; fields the filter does not honour are errors.
func parseGenerated(hf *faultv3.HTTPFault) (*Config, error) {
	switch {
	case len(hf.GetHeaders()) > 0:
		return nil, fmt.Errorf("headers: not supported")
	case len(hf.GetDownstreamNodes()) > 0:
		return nil, fmt.Errorf("downstream_nodes: not supported")
	case hf.GetUpstreamCluster() != "":
		return nil, fmt.Errorf("upstream_cluster: not supported")
	case hf.GetMaxActiveFaults() != nil:
		return nil, fmt.Errorf("max_active_faults: not supported")
	case hf.GetResponseRateLimit() != nil:
		return nil, fmt.Errorf("response_rate_limit: not supported")
	case len(hf.GetFilterMetadata().GetFields()) > 0:
		return nil, fmt.Errorf("filter_metadata: not supported")
	}
	f := &Config{}
	if d := hf.GetDelay(); d != nil {
		fd := d.GetFixedDelay()
		if fd == nil {
			return nil, fmt.Errorf("delay: only fixed_delay is supported")
		}
		f.Delay = fd.AsDuration()
		pm, err := perMillionGenerated(d.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("delay.percentage: %w", err)
		}
		f.DelayPerMill = pm
	}
	if ab := hf.GetAbort(); ab != nil {
		if ab.GetResponseBody() != "" {
			return nil, fmt.Errorf("abort.response_body: not supported")
		}
		switch e := ab.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus >= 600 {
				return nil, fmt.Errorf("abort.http_status %d: want 200-599", e.HttpStatus)
			}
			f.AbortStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			f.AbortGRPC, f.AbortStatus = int(e.GrpcStatus), 200
		case *faultv3.FaultAbort_HeaderAbort_:
			return nil, fmt.Errorf("abort: header_abort not supported")
		default:
			return nil, fmt.Errorf("abort: error_type missing")
		}
		pm, err := perMillionGenerated(ab.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("abort.percentage: %w", err)
		}
		f.AbortPerMill = pm
	}
	return f, nil
}

// perMillion converts a FractionalPercent to parts per million; nil is 100%.
func perMillionGenerated(p *typev3.FractionalPercent) (uint32, error) {
	if p == nil {
		return 1_000_000, nil
	}
	n := uint64(p.GetNumerator())
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10_000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	case typev3.FractionalPercent_MILLION:
	default:
		return 0, fmt.Errorf("denominator %d: unknown", p.GetDenominator())
	}
	return uint32(min(n, 1_000_000)), nil
}
