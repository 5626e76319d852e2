package xdsparse

import (
	"strings"
	"testing"
	"time"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

func statsAny(t *testing.T, typeURL string, v map[string]any) *anypb.Any {
	t.Helper()
	st, err := structpb.NewStruct(v)
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(&xdstypev3.TypedStruct{TypeUrl: typeURL, Value: st})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseStats(t *testing.T) {
	cfg, err := ParseStats(statsAny(t, StatsTypeURL, map[string]any{"metrics": []any{
		map[string]any{"name": "", "drop": true},
		map[string]any{"name": "requests_total", "drop": false, "tags_to_remove": []any{"request_protocol"},
			"dimensions": map[string]any{"user": "request.headers['x-user']", "response_code": "'fixed'"}},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Disabled[metrics.RequestCount] || !cfg.Disabled[metrics.RequestDuration] || !cfg.Disabled[metrics.TCPSentBytes] {
		t.Errorf("disabled %v", cfg.Disabled)
	}
	if !cfg.Removed[metrics.RequestCount][metrics.RequestProtocol] || !cfg.Removed[metrics.RequestCount][metrics.ResponseCode] {
		t.Error("removed / replaced standard labels not dropped")
	}
	if len(cfg.Custom) != 2 || cfg.Custom[0].Name != "response_code" || cfg.Custom[1].Name != "user" || !cfg.Custom[1].In[metrics.RequestCount] || cfg.Custom[1].In[metrics.RequestDuration] {
		t.Errorf("custom %+v", cfg.Custom)
	}
	if cfg.ReportInterval != 0 || cfg.Interval() != metrics.DefaultReportInterval {
		t.Errorf("reporting interval %v without tcp_reporting_duration", cfg.ReportInterval)
	}
	// Istio's gRPC message metrics, a reporting interval, and more custom
	// dimensions than the old bound of four.
	cfg, err = ParseStats(statsAny(t, StatsTypeURL, map[string]any{"tcp_reporting_duration": "1.5s", "metrics": []any{
		map[string]any{"name": "request_messages_total", "drop": true},
		map[string]any{"name": "", "dimensions": map[string]any{"a": "'1'", "b": "'2'", "c": "'3'", "d": "'4'", "e": "'5'", "f": "request.host"}},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Disabled[metrics.GRPCRequestMessages] || cfg.Disabled[metrics.GRPCResponseMessages] || cfg.ReportInterval != 1500*time.Millisecond {
		t.Errorf("disabled %v interval %v", cfg.Disabled, cfg.ReportInterval)
	}
	if len(cfg.Custom) != 6 || !cfg.Custom[5].In[metrics.TCPSentBytes] || !cfg.Custom[5].In[metrics.GRPCResponseMessages] {
		t.Errorf("custom %+v", cfg.Custom)
	}
	for _, c := range []struct {
		v    map[string]any
		typ  string
		want string
	}{
		{map[string]any{"reporter": "SERVER"}, StatsTypeURL, "value.reporter"},
		{map[string]any{"metrics": []any{map[string]any{"name": "bogus"}}}, StatsTypeURL, `value.metrics[0]: name "bogus"`},
		{map[string]any{"metrics": []any{map[string]any{"match": "x"}}}, StatsTypeURL, "value.metrics[0]: match"},
		{map[string]any{"metrics": []any{map[string]any{"dimensions": map[string]any{"x": "request.path.size()"}}}}, StatsTypeURL, "dimensions.x"},
		{map[string]any{"metrics": []any{map[string]any{"dimensions": map[string]any{"bad-name": "request.host"}}}}, StatsTypeURL, "dimensions.bad-name"},
		{map[string]any{"tcp_reporting_duration": "5m"}, StatsTypeURL, "tcp_reporting_duration"},
		{map[string]any{"tcp_reporting_duration": "-1s"}, StatsTypeURL, "tcp_reporting_duration"},
		{map[string]any{}, "type.googleapis.com/other.Config", "type_url"},
	} {
		if _, err := ParseStats(statsAny(t, c.typ, c.v)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %q", c.v, err, c.want)
		}
	}
}
