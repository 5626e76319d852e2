package xdsparse

import (
	"fmt"

	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/telemetry"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of envoy.config.accesslog.v3.AccessLogFilter and the
// filters in it.
const (
	alfStatusCode, alfDuration, alfNotHealthCheck, alfTraceable, alfRuntime = 1, 2, 3, 4, 5
	alfAnd, alfOr, alfHeader, alfResponseFlag, alfGrpcStatus                = 6, 7, 8, 9, 10
	alfExtension, alfMetadata, alfLogType                                   = 11, 12, 13

	statusComparison, cmpOp, cmpValue = 1, 1, 2
	runtimeDefault, runtimeKey        = 2, 3
	andFilters, orFilters             = 1, 2
	headerFilterHeader                = 1
	responseFlags                     = 1
	// extName, extTypedConfig: routewire.go

	cmpEQ, cmpGE, cmpLE, cmpNE = 0, 1, 2, 3
)

// parseAccessLogFilterWire parses Envoy's access log filters that decide
// on what a record holds: status_code_filter, duration_filter,
// response_flag_filter, header_filter, and and_filter / or_filter of them
// (what mastd compiles the Telemetry API's CEL filters into).
func parseAccessLogFilterWire(f *wireMsg) (func(*telemetry.Record) bool, error) {
	switch {
	case f.has(alfStatusCode):
		cmp, err := parseComparisonWire(f.sub(alfStatusCode).sub(statusComparison))
		if err != nil {
			return nil, fmt.Errorf("status_code_filter: %w", err)
		}
		return func(r *telemetry.Record) bool { return cmp(int64(r.ResponseCode)) }, nil
	case f.has(alfDuration):
		cmp, err := parseComparisonWire(f.sub(alfDuration).sub(statusComparison))
		if err != nil {
			return nil, fmt.Errorf("duration_filter: %w", err)
		}
		return func(r *telemetry.Record) bool { return cmp(r.Duration.Milliseconds()) }, nil
	case f.has(alfResponseFlag):
		var want telemetry.Flags
		for i, code := range wireStrings(f.sub(alfResponseFlag), responseFlags) {
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
	case f.has(alfAnd), f.has(alfOr):
		subs, and := f.sub(alfOr).subs(orFilters), false
		if f.has(alfAnd) {
			subs, and = f.sub(alfAnd).subs(andFilters), true
		}
		var fs []func(*telemetry.Record) bool
		for i, sub := range subs {
			fn, err := parseAccessLogFilterWire(sub)
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
	case f.has(alfHeader):
		m, err := match.DecodeHeader(f.sub(alfHeader).msg(headerFilterHeader))
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
	case f.has(alfExtension):
		// CEL expression filters (what Istio's Telemetry API
		// filter.expression becomes) are not evaluated by mast-proxy yet.
		e := f.sub(alfExtension)
		return nil, fmt.Errorf("extension_filter %q (%s): not supported", e.str(extName), typedConfig(e, extTypedConfig).GetTypeUrl())
	}
	for _, o := range []struct {
		num  protowire.Number
		name string
	}{{alfNotHealthCheck, "not_health_check_filter"}, {alfTraceable, "traceable_filter"}, {alfRuntime, "runtime_filter"},
		{alfGrpcStatus, "grpc_status_filter"}, {alfMetadata, "metadata_filter"}, {alfLogType, "log_type_filter"}} {
		if f.has(o.num) {
			return nil, fmt.Errorf("%s: not supported", o.name)
		}
	}
	return nil, fmt.Errorf("filter_specifier: missing")
}

func parseComparisonWire(c *wireMsg) (func(int64) bool, error) {
	val := c.sub(cmpValue)
	if val.str(runtimeKey) != "" {
		return nil, fmt.Errorf("comparison.value.runtime_key: not supported")
	}
	v := int64(uint32(val.u64(runtimeDefault)))
	switch op := int32(c.u64(cmpOp)); op {
	case cmpEQ:
		return func(x int64) bool { return x == v }, nil
	case cmpGE:
		return func(x int64) bool { return x >= v }, nil
	case cmpLE:
		return func(x int64) bool { return x <= v }, nil
	case cmpNE:
		return func(x int64) bool { return x != v }, nil
	default:
		return nil, fmt.Errorf("comparison.op %s: not supported", enumName(c, cmpOp, op))
	}
}
