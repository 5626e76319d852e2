package xdsparse

import (
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	grpcalv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/telemetry"
)

func mustAny(m proto.Message) *anypb.Any { a, _ := anypb.New(m); return a }

func fileLog(f *filev3.FileAccessLog, filter *accesslogv3.AccessLogFilter) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{Name: "envoy.access_loggers.file", Filter: filter, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(f)}}
}

func TestAccessLogNACKsNameTheField(t *testing.T) {
	text := &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: "%BOGUS%"}}}
	for name, tc := range map[string]struct {
		l    *accesslogv3.AccessLog
		want string
	}{
		"no path":     {fileLog(&filev3.FileAccessLog{}, nil), "path: empty"},
		"bad op":      {fileLog(&filev3.FileAccessLog{Path: "/dev/stdout", AccessLogFormat: text}, nil), "%BOGUS%: not supported"},
		"grpc logger": {&accesslogv3.AccessLog{Name: "als", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&grpcalv3.HttpGrpcAccessLogConfig{})}}, "HttpGrpcAccessLogConfig: not supported"},
		"omit empty": {fileLog(&filev3.FileAccessLog{Path: "/dev/stdout", AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{OmitEmptyValues: true}}}, nil),
			"omit_empty_values: not supported"},
		"cel filter": {fileLog(&filev3.FileAccessLog{Path: "/dev/stdout"}, &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{
			ExtensionFilter: &accesslogv3.ExtensionFilter{Name: "envoy.access_loggers.extension_filters.cel", ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: mustAny(&celv3.ExpressionFilter{Expression: "response.code >= 400"})}}}}),
			"filter: extension_filter"},
		"bad flag": {fileLog(&filev3.FileAccessLog{Path: "/dev/stdout"}, &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
			ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"XX"}}}}), `flags[0] "XX": unknown flag`},
	} {
		_, err := parseAccessLogs(t, []*accesslogv3.AccessLog{tc.l})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "access_log[0]") {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestAccessLogFilters(t *testing.T) {
	ge400 := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_GE, Value: &corev3.RuntimeUInt32{DefaultValue: 400}}}}}
	nr := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NR"}}}}
	or := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{Filters: []*accesslogv3.AccessLogFilter{ge400, nr}}}}
	and := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{ge400, nr}}}}
	logs, err := parseAccessLogs(t, []*accesslogv3.AccessLog{fileLog(&filev3.FileAccessLog{Path: "/dev/stdout"}, or), fileLog(&filev3.FileAccessLog{Path: "/dev/stdout"}, and)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rec     telemetry.Record
		or, and bool
	}{
		{telemetry.Record{ResponseCode: 200}, false, false},
		{telemetry.Record{ResponseCode: 503}, true, false},
		{telemetry.Record{ResponseCode: 404, Flags: telemetry.NoRouteFound}, true, true},
		{telemetry.Record{ResponseCode: 200, Flags: telemetry.NoRouteFound}, true, false},
	} {
		if got := logs[0].Filter(&tc.rec); got != tc.or {
			t.Errorf("or(%+v) = %v", tc.rec.ResponseCode, got)
		}
		if got := logs[1].Filter(&tc.rec); got != tc.and {
			t.Errorf("and(%+v) = %v", tc.rec.ResponseCode, got)
		}
	}
}
