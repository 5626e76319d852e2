package xdsparse

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"

	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/telemetry"
)

// parseAccessLogFilter parses Envoy's access log filters that decide on
// what a record holds: status_code_filter, duration_filter,
// response_flag_filter, header_filter, and and_filter / or_filter of them
// (what mastd compiles the Telemetry API's CEL filters into).
func parseAccessLogFilter(f *accesslogv3.AccessLogFilter) (func(*telemetry.Record) bool, error) {
	switch s := f.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		cmp, err := parseComparison(s.StatusCodeFilter.GetComparison())
		if err != nil {
			return nil, fmt.Errorf("status_code_filter: %w", err)
		}
		return func(r *telemetry.Record) bool { return cmp(int64(r.ResponseCode)) }, nil
	case *accesslogv3.AccessLogFilter_DurationFilter:
		cmp, err := parseComparison(s.DurationFilter.GetComparison())
		if err != nil {
			return nil, fmt.Errorf("duration_filter: %w", err)
		}
		return func(r *telemetry.Record) bool { return cmp(r.Duration.Milliseconds()) }, nil
	case *accesslogv3.AccessLogFilter_ResponseFlagFilter:
		var want telemetry.Flags
		for i, code := range s.ResponseFlagFilter.GetFlags() {
			fl, ok := telemetry.ParseFlag(code)
			if !ok {
				return nil, fmt.Errorf("response_flag_filter.flags[%d] %q: unknown flag", i, code)
			}
			want |= fl
		}
		if want == 0 {
			return func(r *telemetry.Record) bool { return r.Flags != 0 }, nil
		}
		return func(r *telemetry.Record) bool { return r.Flags&want != 0 }, nil
	case *accesslogv3.AccessLogFilter_AndFilter, *accesslogv3.AccessLogFilter_OrFilter:
		var subs []*accesslogv3.AccessLogFilter
		and := false
		if a, ok := s.(*accesslogv3.AccessLogFilter_AndFilter); ok {
			subs, and = a.AndFilter.GetFilters(), true
		} else {
			subs = s.(*accesslogv3.AccessLogFilter_OrFilter).OrFilter.GetFilters()
		}
		var fs []func(*telemetry.Record) bool
		for i, sub := range subs {
			fn, err := parseAccessLogFilter(sub)
			if err != nil {
				return nil, fmt.Errorf("filters[%d]: %w", i, err)
			}
			fs = append(fs, fn)
		}
		return func(r *telemetry.Record) bool {
			for _, fn := range fs {
				if fn(r) != and {
					return !and
				}
			}
			return and
		}, nil
	case *accesslogv3.AccessLogFilter_HeaderFilter:
		m, err := match.ParseHeader(s.HeaderFilter.GetHeader())
		if err != nil {
			return nil, fmt.Errorf("header_filter: %w", err)
		}
		return func(r *telemetry.Record) bool {
			var v string
			var ok bool
			if m.Name == "host" {
				v, ok = r.Authority, r.Authority != ""
			} else {
				v, ok = r.RequestHeaders.Get(m.Name)
			}
			return m.MatchValue(v, ok)
		}, nil
	case *accesslogv3.AccessLogFilter_ExtensionFilter:
		return parseExtensionFilter(s.ExtensionFilter)
	default:
		return nil, fmt.Errorf("%T: not supported", s)
	}
}

func parseComparison(c *accesslogv3.ComparisonFilter) (func(int64) bool, error) {
	if c.GetValue().GetRuntimeKey() != "" {
		return nil, fmt.Errorf("comparison.value.runtime_key: not supported")
	}
	v := int64(c.GetValue().GetDefaultValue())
	switch c.GetOp() {
	case accesslogv3.ComparisonFilter_EQ:
		return func(x int64) bool { return x == v }, nil
	case accesslogv3.ComparisonFilter_GE:
		return func(x int64) bool { return x >= v }, nil
	case accesslogv3.ComparisonFilter_LE:
		return func(x int64) bool { return x <= v }, nil
	case accesslogv3.ComparisonFilter_NE:
		return func(x int64) bool { return x != v }, nil
	}
	return nil, fmt.Errorf("comparison.op %v: not supported", c.GetOp())
}
