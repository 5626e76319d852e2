package xdsparse

import (
	"fmt"

	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
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
func parseAccessLogFilterWire(f *pbwire.Msg) (func(*telemetry.Record) bool, error) {
	switch {
	case f.Has(alfStatusCode):
		cmp, err := parseComparisonWire(f.Sub(alfStatusCode).Sub(statusComparison))
		if err != nil {
			return nil, fmt.Errorf("status_code_filter: %w", err)
		}
		return func(r *telemetry.Record) bool { return cmp(int64(r.ResponseCode)) }, nil
	case f.Has(alfDuration):
		cmp, err := parseComparisonWire(f.Sub(alfDuration).Sub(statusComparison))
		if err != nil {
			return nil, fmt.Errorf("duration_filter: %w", err)
		}
		return func(r *telemetry.Record) bool { return cmp(r.Duration.Milliseconds()) }, nil
	case f.Has(alfResponseFlag):
		var want telemetry.Flags
		for i, code := range wireStrings(f.Sub(alfResponseFlag), responseFlags) {
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
	case f.Has(alfAnd), f.Has(alfOr):
		subs, and := f.Sub(alfOr).Subs(orFilters), false
		if f.Has(alfAnd) {
			subs, and = f.Sub(alfAnd).Subs(andFilters), true
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
	case f.Has(alfHeader):
		m, err := match.DecodeHeader(f.Sub(alfHeader).Bytes(headerFilterHeader))
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
	case f.Has(alfExtension):
		// CEL expression filters (what Istio's Telemetry API
		// filter.expression becomes) are not evaluated by mast-proxy yet.
		e := f.Sub(alfExtension)
		return nil, fmt.Errorf("extension_filter %q (%s): not supported", e.Str(extName), typedConfig(e, extTypedConfig).GetTypeUrl())
	}
	for _, o := range []struct {
		num  protowire.Number
		name string
	}{{alfNotHealthCheck, "not_health_check_filter"}, {alfTraceable, "traceable_filter"}, {alfRuntime, "runtime_filter"},
		{alfGrpcStatus, "grpc_status_filter"}, {alfMetadata, "metadata_filter"}, {alfLogType, "log_type_filter"}} {
		if f.Has(o.num) {
			return nil, fmt.Errorf("%s: not supported", o.name)
		}
	}
	return nil, fmt.Errorf("filter_specifier: missing")
}

func parseComparisonWire(c *pbwire.Msg) (func(int64) bool, error) {
	val := c.Sub(cmpValue)
	if val.Str(runtimeKey) != "" {
		return nil, fmt.Errorf("comparison.value.runtime_key: not supported")
	}
	v := int64(uint32(val.U64(runtimeDefault)))
	switch op := int32(c.U64(cmpOp)); op {
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
