// Package fault is Envoy's fault injection HTTP filter
// (envoy.filters.http.fault): a fixed delay and/or an abort (HTTP or gRPC
// status) for a fraction of requests, configured on the filter and
// overridden per route.
package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
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

var (
	_ filter.HTTPFilter = (*Filter)(nil)
	_ filter.IdleFilter = (*Filter)(nil)
)

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

// config is the configuration for a request on route rc (nil: none): the
// route's own, else the filter's.
func (f *Filter) config(rc filter.RouteConfig) *Config {
	if rc != nil {
		if c, ok := rc.PerFilterConfig(f.name).(*Config); ok {
			return c
		}
	}
	return f.cfg
}

// IdleOn reports whether the configuration for rc injects nothing.
func (f *Filter) IdleOn(rc filter.RouteConfig) bool { return !f.config(rc).active() }

// DecodeHeaders delays and/or aborts the request as configured.
func (f *Filter) DecodeHeaders(ctx context.Context, r *filter.Request) filter.Status {
	c := f.config(r.Route)
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

// Field numbers of HTTPFault, FaultDelay, FaultAbort and
// envoy.type.v3.FractionalPercent.
const (
	hfDelay          = 1
	hfAbort          = 2
	hfUpstream       = 3
	hfHeaders        = 4
	hfDownstream     = 5
	hfMaxActive      = 6
	hfRateLimit      = 7
	hfFilterMetadata = 16
	structFields     = 1 // google.protobuf.Struct.fields

	delayFixed      = 3
	delayPercentage = 4
	delayHeader     = 5

	abortHTTP       = 2
	abortPercentage = 3
	abortHeader     = 4
	abortGRPC       = 5
	abortBody       = 6

	fpNumerator   = 1
	fpDenominator = 2
)

// ParseAny decodes and compiles an HTTPFault.
func ParseAny(a *anypb.Any) (*Config, error) {
	c, err := Parse(a.GetValue())
	if err != nil && errors.Is(err, errDecode) {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return c, err
}

var errDecode = errors.New("decode")

// Parse decodes and compiles an HTTPFault from its wire bytes; fields the
// filter does not honour are errors.
func Parse(b []byte) (*Config, error) {
	hf, err := pbwire.Decode(wireTable, wireHTTPFault, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDecode, err)
	}
	switch {
	case hf.Has(hfHeaders):
		return nil, fmt.Errorf("headers: not supported")
	case hf.Has(hfDownstream):
		return nil, fmt.Errorf("downstream_nodes: not supported")
	case hf.Str(hfUpstream) != "":
		return nil, fmt.Errorf("upstream_cluster: not supported")
	case hf.Has(hfMaxActive):
		return nil, fmt.Errorf("max_active_faults: not supported")
	case hf.Has(hfRateLimit):
		return nil, fmt.Errorf("response_rate_limit: not supported")
	case hf.Sub(hfFilterMetadata).Has(structFields):
		return nil, fmt.Errorf("filter_metadata: not supported")
	}
	f := &Config{}
	if hf.Has(hfDelay) {
		d := hf.Sub(hfDelay)
		if !d.Has(delayFixed) {
			return nil, fmt.Errorf("delay: only fixed_delay is supported")
		}
		f.Delay = pbwire.Duration(d.Sub(delayFixed))
		pm, err := perMillion(d.Sub(delayPercentage))
		if err != nil {
			return nil, fmt.Errorf("delay.percentage: %w", err)
		}
		f.DelayPerMill = pm
	}
	if hf.Has(hfAbort) {
		ab := hf.Sub(hfAbort)
		if ab.Str(abortBody) != "" {
			return nil, fmt.Errorf("abort.response_body: not supported")
		}
		switch ab.Oneof(abortHTTP, abortGRPC, abortHeader) {
		case abortHTTP:
			if s := ab.U32(abortHTTP); s < 200 || s >= 600 {
				return nil, fmt.Errorf("abort.http_status %d: want 200-599", s)
			}
			f.AbortStatus = int(ab.U32(abortHTTP))
		case abortGRPC:
			f.AbortGRPC, f.AbortStatus = int(ab.U32(abortGRPC)), 200
		case abortHeader:
			return nil, fmt.Errorf("abort: header_abort not supported")
		default:
			return nil, fmt.Errorf("abort: error_type missing")
		}
		pm, err := perMillion(ab.Sub(abortPercentage))
		if err != nil {
			return nil, fmt.Errorf("abort.percentage: %w", err)
		}
		f.AbortPerMill = pm
	}
	return f, nil
}

// perMillion converts a FractionalPercent to parts per million; nil is 100%.
func perMillion(p *pbwire.Msg) (uint32, error) {
	if p == nil {
		return 1_000_000, nil
	}
	n := uint64(p.U32(fpNumerator))
	switch d := p.I32(fpDenominator); d {
	case 0: // HUNDRED
		n *= 10_000
	case 1: // TEN_THOUSAND
		n *= 100
	case 2: // MILLION
	default:
		return 0, fmt.Errorf("denominator %d: unknown", d)
	}
	return uint32(min(n, 1_000_000)), nil
}
