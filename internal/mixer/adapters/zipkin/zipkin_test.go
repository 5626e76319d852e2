package zipkin

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/template"
	"github.com/mast-mesh/mast/internal/telemetry/zipkin"
)

// collector is a Zipkin v2 endpoint that keeps what it is sent.
type collector struct {
	mu    sync.Mutex
	spans []zipkin.Span
	posts int
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var got []zipkin.Span
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/spans" || r.Header.Get("content-type") != "application/json" {
		http.Error(w, "bad request", 400)
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	c.mu.Lock()
	c.spans = append(c.spans, got...)
	c.posts++
	c.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func handler(t *testing.T, url string, p float64) *Handler {
	t.Helper()
	params, _ := structpb.NewStruct(map[string]any{"url": url, "sample_probability": p})
	h, err := New(adapter.Env{}, "zipkin.handler.istio-system", params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h.(*Handler)
}

var t0 = time.Date(2026, 12, 5, 18, 0, 0, 0, time.UTC)

// span is a tracespan instance as Istio's sample tracespan instance fills
// it for a request through a sidecar.
func span(trace, id, parent string, client bool, code int64) *template.Instance {
	return &template.Instance{Name: "default.instance.istio-system", Template: "tracespan", Fields: map[string]any{
		"trace_id": trace, "span_id": id, "parent_span_id": parent, "span_name": "/productpage",
		"start_time": t0, "end_time": t0.Add(1500 * time.Microsecond), "client_span": client,
		"rewrite_client_span_id": false, "http_status_code": code,
		"source_name": "istio-ingressgateway", "source_ip": []byte(net.ParseIP("10.0.0.1").To4()),
		"destination_name": "productpage-v1", "destination_ip": []byte(net.ParseIP("10.0.0.2").To16()),
		"span_tags": map[string]any{"http.method": "GET", "request.size": int64(0)},
	}}
}

func TestSpansReachTheCollector(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	h := handler(t, srv.URL+"/api/v2/spans", 1)
	insts := []*template.Instance{
		span("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "0020000000000001", false, 200),
		span("463ac35c9f6413ad", "b2fb4a1d1a96d312", "", true, 503),
		span("not-hex", "a2fb4a1d1a96d312", "", false, 200),          // dropped: trace ID
		span("463ac35c9f6413ad", "", "", false, 200),                 // dropped: span ID
		span("0000000000000000", "a2fb4a1d1a96d312", "", false, 200), // dropped: zero trace ID
	}
	// The server span's instance sets the template's size and protocol
	// fields; the client span's does not.
	for k, v := range map[string]any{"request_size": int64(120), "request_total_size": int64(480), "response_size": int64(0),
		"response_total_size": int64(5120), "api_protocol": "http"} {
		insts[0].Fields[k] = v
	}
	if err := h.HandleReport(context.Background(), insts); err != nil {
		t.Fatal(err)
	}
	if c.posts != 1 || len(c.spans) != 2 {
		t.Fatalf("%d posts, spans %+v; want one post of two spans", c.posts, c.spans)
	}
	srvSpan, cliSpan := c.spans[0], c.spans[1]
	if srvSpan.TraceID != "463ac35c9f6413ad48485a3953bb6124" || srvSpan.ID != "a2fb4a1d1a96d312" || srvSpan.ParentID != "0020000000000001" ||
		srvSpan.Kind != "SERVER" || srvSpan.Name != "/productpage" || srvSpan.Timestamp != t0.UnixMicro() || srvSpan.Duration != 1500 {
		t.Errorf("server span %+v", srvSpan)
	}
	if ep := srvSpan.LocalEndpoint; ep == nil || ep.ServiceName != "productpage-v1" || ep.IPv4 != "10.0.0.2" {
		t.Errorf("server span's endpoint %+v, want the destination", ep)
	}
	if srvSpan.Tags["http.status_code"] != "200" || srvSpan.Tags["http.method"] != "GET" || srvSpan.Tags["request.size"] != "0" || srvSpan.Tags["error"] != "" {
		t.Errorf("server span's tags %v", srvSpan.Tags)
	}
	for k, want := range map[string]string{"request_size": "120", "request_total_size": "480", "response_size": "0",
		"response_total_size": "5120", "api_protocol": "http"} {
		if srvSpan.Tags[k] != want {
			t.Errorf("server span's tag %s = %q, want %q (from the instance's %s field)", k, srvSpan.Tags[k], want, k)
		}
		if _, ok := cliSpan.Tags[k]; ok {
			t.Errorf("client span has tag %s, which its instance did not set", k)
		}
	}
	if a := srvSpan.Annotations; len(a) != 2 || a[0].Value != "RECV" || a[1].Value != "SENT" {
		t.Errorf("server span's annotations %v", a)
	}
	if cliSpan.TraceID != "463ac35c9f6413ad" || cliSpan.Kind != "CLIENT" || cliSpan.ParentID != "" {
		t.Errorf("client span %+v", cliSpan)
	}
	if ep := cliSpan.LocalEndpoint; ep == nil || ep.ServiceName != "istio-ingressgateway" || ep.IPv4 != "10.0.0.1" {
		t.Errorf("client span's endpoint %+v, want the source", ep)
	}
	if cliSpan.Tags["error"] != "UNAVAILABLE" {
		t.Errorf("a 503 client span's tags %v, want error UNAVAILABLE", cliSpan.Tags)
	}
}

// With rewrite_client_span_id, the client span takes a derived ID and the
// server span (same shared ID) becomes its child.
func TestRewriteClientSpanID(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	h := handler(t, srv.URL+"/api/v2/spans", 1)
	cli := span("463ac35c9f6413ad", "a2fb4a1d1a96d312", "1111111111111111", true, 200)
	sv := span("463ac35c9f6413ad", "a2fb4a1d1a96d312", "1111111111111111", false, 200)
	cli.Fields["rewrite_client_span_id"], sv.Fields["rewrite_client_span_id"] = true, "true"
	if err := h.HandleReport(context.Background(), []*template.Instance{cli, sv}); err != nil {
		t.Fatal(err)
	}
	if len(c.spans) != 2 {
		t.Fatalf("spans %+v", c.spans)
	}
	gotCli, gotSrv := c.spans[0], c.spans[1]
	if gotCli.ID == "a2fb4a1d1a96d312" || gotCli.ParentID != "1111111111111111" {
		t.Errorf("client span %s (parent %s): want a rewritten ID under the original parent", gotCli.ID, gotCli.ParentID)
	}
	if gotSrv.ID != "a2fb4a1d1a96d312" || gotSrv.ParentID != gotCli.ID {
		t.Errorf("server span %s parent %s, want the shared ID under the client span %s", gotSrv.ID, gotSrv.ParentID, gotCli.ID)
	}
}

// Sampling is by trace: every span of a trace gets one answer, and about
// the configured share of traces (64-bit and 128-bit IDs alike) is sent.
func TestSamplingByTrace(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	for _, p := range []float64{0, 0.25, 1} {
		for _, width := range []int{8, 16} {
			c.mu.Lock()
			c.spans = nil
			c.mu.Unlock()
			h := handler(t, srv.URL+"/api/v2/spans", p)
			const traces = 2000
			var insts []*template.Instance
			for i := range traces {
				tid := fmt.Sprintf("%016x", uint64(i+1)*0x9e3779b97f4a7c15)
				if width == 16 {
					tid += "0000000000000001"
				}
				insts = append(insts, span(tid, "a2fb4a1d1a96d312", "", false, 200), span(tid, "b2fb4a1d1a96d312", "a2fb4a1d1a96d312", true, 200))
			}
			if err := h.HandleReport(context.Background(), insts); err != nil {
				t.Fatal(err)
			}
			per := map[string]int{}
			for _, s := range c.spans {
				per[s.TraceID]++
			}
			for tid, n := range per {
				if n != 2 {
					t.Fatalf("p=%v: trace %s got %d of its 2 spans", p, tid, n)
				}
			}
			share := float64(len(per)) / traces
			if p == 0 && len(per) != 0 || p == 1 && len(per) != traces || p == 0.25 && (share < 0.2 || share > 0.3) {
				t.Errorf("p=%v, %d-byte IDs: %.3f of traces sampled", p, width, share)
			}
		}
	}
}

func TestParamsErrorsNameTheField(t *testing.T) {
	for _, c := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{}, "params.url: required"},
		{map[string]any{"url": "zipkin:9411"}, "params.url"},
		{map[string]any{"url": "http://z:9411/api/v2/spans", "sampleProbability": 1.5}, "params.sampleProbability"},
		{map[string]any{"url": "http://z:9411/api/v2/spans", "sample_probability": -0.1}, "params.sampleProbability"},
		{map[string]any{"url": "http://z:9411/api/v2/spans", "samples": 1}, "params: unknown field \"samples\""},
	} {
		params, _ := structpb.NewStruct(c.params)
		if err := Info.Validate(params); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.params, err, c.want)
		}
	}
}

// A collector that refuses spans is an error naming it, not a silent drop.
func TestCollectorErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "full", 503) }))
	defer srv.Close()
	h := handler(t, srv.URL+"/api/v2/spans", 1)
	err := h.HandleReport(context.Background(), []*template.Instance{span("463ac35c9f6413ad", "a2fb4a1d1a96d312", "", false, 200)})
	if err == nil || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("err %v, want one naming the collector", err)
	}
}
