package xdsparse

import (
	"strings"
	"testing"

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
	if cfg.CustomNames[0] != "response_code" || cfg.CustomNames[1] != "user" || !cfg.CustomIn[metrics.RequestCount][1] || cfg.CustomIn[metrics.RequestDuration][1] {
		t.Errorf("custom %v %v", cfg.CustomNames, cfg.CustomIn)
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
		{map[string]any{"metrics": []any{map[string]any{"dimensions": map[string]any{"a": "'1'", "b": "'2'", "c": "'3'", "d": "'4'", "e": "'5'"}}}}, StatsTypeURL, "more than 4"},
		{map[string]any{}, "type.googleapis.com/other.Config", "type_url"},
	} {
		if _, err := ParseStats(statsAny(t, c.typ, c.v)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %q", c.v, err, c.want)
		}
	}
}
