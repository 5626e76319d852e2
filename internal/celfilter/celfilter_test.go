package celfilter_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/celfilter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse/xdsparsetest"
	"github.com/mast-mesh/mast/internal/telemetry"
)

// proxyFilter compiles expr and hands the result to mast-proxy's parser,
// returning the predicate the proxy will run.
func proxyFilter(t *testing.T, expr string) func(*telemetry.Record) bool {
	t.Helper()
	f, err := celfilter.Compile(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	fa, _ := anypb.New(&filev3.FileAccessLog{Path: "/dev/stdout"})
	h := &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "r"}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: xdsparse.RouterFilterName}},
		AccessLog:      []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", Filter: f, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: fa}}},
	}
	m, err := xdsparsetest.ParseHTTPManager(h)
	if err != nil {
		t.Fatalf("%s: mast-proxy refuses %v: %v", expr, f, err)
	}
	return m.AccessLogs[0].Filter
}

func TestCompiledFiltersKeepWhatCELKeeps(t *testing.T) {
	rec := func(code int, d time.Duration, h ...string) *telemetry.Record {
		r := &telemetry.Record{ResponseCode: code, Duration: d}
		for i := 0; i+1 < len(h); i += 2 {
			r.RequestHeaders = append(r.RequestHeaders, headers.Field{Name: h[i], Value: h[i+1]})
		}
		return r
	}
	recs := []*telemetry.Record{rec(200, time.Millisecond), rec(404, 0), rec(400, 0), rec(503, 2*time.Second, "x-debug", "1"), rec(200, 0, "x-debug", "0")}
	for _, tc := range []struct {
		expr string
		keep []bool
	}{
		{"response.code >= 400", []bool{false, true, true, true, false}},
		{"response.code > 400", []bool{false, true, false, true, false}},
		{"400 <= response.code", []bool{false, true, true, true, false}},
		{"response.code < 400", []bool{true, false, false, false, true}},
		{"!(response.code >= 400)", []bool{true, false, false, false, true}},
		{"response.code == 404 || response.code == 503", []bool{false, true, false, true, false}},
		{"response.code != 200 && !(response.code == 400)", []bool{false, true, false, true, false}},
		{"response.duration > duration('1s')", []bool{false, false, false, true, false}},
		{"request.headers['x-debug'] == '1'", []bool{false, false, false, true, false}},
		// A missing header is an evaluation error in CEL (not logged),
		// and no match for Envoy's header filter, inverted or not.
		{"request.headers['x-debug'] != '1'", []bool{false, false, false, false, true}},
		{"'x-debug' in request.headers", []bool{false, false, false, true, true}},
		{"!('x-debug' in request.headers) && response.code >= 400", []bool{false, true, true, false, false}},
	} {
		f := proxyFilter(t, tc.expr)
		for i, r := range recs {
			if got := f(r); got != tc.keep[i] {
				t.Errorf("%s on record %d (%d): %v, want %v", tc.expr, i, r.ResponseCode, got, tc.keep[i])
			}
		}
	}
}

func TestInvalidAndUnsupported(t *testing.T) {
	for _, expr := range []string{"response.code >=", "nosuch.attr == 1", "response.code + 1", ""} {
		if _, err := celfilter.Compile(expr); err == nil || errors.Is(err, celfilter.ErrUnsupported) {
			t.Errorf("%q: %v, want an invalid-CEL error", expr, err)
		}
	}
	for _, expr := range []string{"request.path.startsWith('/api')", "response.code >= request.size", "true", "connection.mtls == true"} {
		_, err := celfilter.Compile(expr)
		if !errors.Is(err, celfilter.ErrUnsupported) || !strings.Contains(err.Error(), "supported:") {
			t.Errorf("%q: %v, want ErrUnsupported listing what is", expr, err)
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"response.code >= 400", "!('a' in request.headers) || response.duration < duration('5ms')", "request.headers['x'] == 'y'", "1 ==", "'\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if len(expr) > 1000 {
			return
		}
		celfilter.Compile(expr) // must not panic
	})
}
