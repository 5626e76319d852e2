// Package fault is Envoy's fault injection HTTP filter
// (envoy.filters.http.fault): a fixed delay and/or an abort (HTTP or gRPC
// status) for a fraction of requests, configured on the filter and
// overridden per route.
package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Name is the filter's well-known name.
const Name = "envoy.filters.http.fault"

// TypeURL is its configuration's type URL (also the per-route type).
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

// Config is a compiled HTTPFault.
type Config struct {
	Delay        time.Duration
	DelayPerMill uint32 // per million
	AbortStatus  int
	AbortGRPC    int
	AbortPerMill uint32
}

// active reports whether the configuration injects anything.
func (c *Config) active() bool {
	return c != nil && (c.AbortStatus != 0 || c.DelayPerMill != 0 && c.Delay > 0)
}

// Filter injects faults.
type Filter struct {
	name string
	cfg  *Config // nil: only routes configure faults
}

var _ filter.HTTPFilter = (*Filter)(nil)

// New parses the filter's typed config.
func New(name string, a *anypb.Any) (filter.HTTPFilter, error) {
	c, err := ParseAny(a)
	if err != nil {
		return nil, err
	}
	f := &Filter{name: name}
	if c.active() {
		f.cfg = c
	}
	return f, nil
}

// PerRoute parses a route's typed_per_filter_config entry.
func PerRoute(a *anypb.Any) (any, error) { return ParseAny(a) }

// Config returns the filter's own configuration (nil when only routes
// configure faults).
func (f *Filter) Config() *Config { return f.cfg }

// DecodeHeaders delays and/or aborts the request as configured.
func (f *Filter) DecodeHeaders(ctx context.Context, r *filter.Request) filter.Status {
	c := f.cfg
	if r.Route != nil {
		if rc, ok := r.Route.PerFilterConfig(f.name).(*Config); ok {
			c = rc
		}
	}
	if c == nil {
		return filter.Continue
	}
	if c.Delay > 0 && hit(c.DelayPerMill) {
		r.Flags |= filter.FlagFaultDelay
		t := time.NewTimer(c.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return filter.Stop
		}
	}
	if c.AbortStatus != 0 && hit(c.AbortPerMill) {
		r.Flags |= filter.FlagFaultAbort
		if c.AbortGRPC != 0 {
			return r.LocalReply(c.AbortStatus, "fault filter abort", "FI", headers.Field{Name: "grpc-status", Value: strconv.Itoa(c.AbortGRPC)})
		}
		return r.LocalReply(c.AbortStatus, "fault filter abort", "FI")
	}
	return filter.Continue
}

func hit(perMillion uint32) bool {
	return perMillion >= 1_000_000 || (perMillion > 0 && rand.Uint32N(1_000_000) < perMillion)
}

// ParseAny decodes and compiles an HTTPFault.
func ParseAny(a *anypb.Any) (*Config, error) {
	var hf faultv3.HTTPFault
	if err := a.UnmarshalTo(&hf); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return Parse(&hf)
}

// Parse compiles an HTTPFault; fields the filter does not honour are errors.
func Parse(hf *faultv3.HTTPFault) (*Config, error) {
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
		pm, err := perMillion(d.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("delay.percentage: %w", err)
		}
		f.DelayPerMill = pm
	}
	if ab := hf.GetAbort(); ab != nil {
		switch e := ab.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus >= 600 {
				return nil, fmt.Errorf("abort.http_status %d: want 200-599", e.HttpStatus)
			}
			f.AbortStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			f.AbortGRPC, f.AbortStatus = int(e.GrpcStatus), 200
		default:
			return nil, fmt.Errorf("abort: %T not supported", e)
		}
		pm, err := perMillion(ab.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("abort.percentage: %w", err)
		}
		f.AbortPerMill = pm
	}
	return f, nil
}

// perMillion converts a FractionalPercent to parts per million; nil is 100%.
func perMillion(p *typev3.FractionalPercent) (uint32, error) {
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
		return 0, fmt.Errorf("denominator %v: unknown", p.GetDenominator())
	}
	return uint32(min(n, 1_000_000)), nil
}
