package metrics

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/telemetry"
)

var productpage = telemetry.Peer{Name: "productpage-v1", Workload: "productpage-v1", Namespace: "default", App: "productpage",
	Version: "v1", CanonicalService: "productpage", CanonicalRevision: "v1", Cluster: "Kubernetes"}
var reviews = telemetry.Peer{Workload: "reviews-v2", Namespace: "default", App: "reviews", Version: "v2",
	CanonicalService: "reviews", CanonicalRevision: "v2", Cluster: "Kubernetes"}

func parse(t *testing.T, r *Registry) map[string]*dto.MetricFamily {
	t.Helper()
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects the output: %v\n%s", err, buf.String())
	}
	return fams
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestStandardLabelsBothReporters(t *testing.T) {
	reg := New(0)
	client := NewBuilder(Local{Peer: productpage, Principal: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"})
	server := NewBuilder(Local{Peer: reviews, Principal: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"})
	out := telemetry.Record{Outbound: true, Protocol: "HTTP/1.1", ResponseCode: 200, UpstreamCluster: "outbound|9080|v2|reviews.default.svc.cluster.local",
		UpstreamPeer: &reviews, UpstreamPrincipal: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"}
	in := telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 503, Flags: telemetry.FaultInjected, Authority: "reviews:9080",
		DownstreamPeer: &productpage, DownstreamMTLS: true, DownstreamPrincipal: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"}
	var l Labels
	client.Build(&out, &l)
	reg.RecordRequest(&l, 12*time.Millisecond, 100, 2000)
	server.Build(&in, &l)
	reg.RecordRequest(&l, 3*time.Millisecond, 0, 18)

	fams := parse(t, reg)
	rq := fams["istio_requests_total"]
	if rq.GetType() != dto.MetricType_COUNTER || len(rq.GetMetric()) != 2 {
		t.Fatalf("istio_requests_total: %v", rq)
	}
	want := map[string]map[string]string{
		"source": {"source_workload": "productpage-v1", "source_workload_namespace": "default", "source_app": "productpage",
			"source_version": "v1", "source_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
			"destination_workload": "reviews-v2", "destination_version": "v2", "destination_service": "reviews.default.svc.cluster.local",
			"destination_service_name": "reviews", "destination_service_namespace": "default", "response_code": "200",
			"response_flags": "-", "connection_security_policy": "unknown", "request_protocol": "http",
			"destination_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-reviews", "source_canonical_service": "productpage",
			"destination_cluster": "Kubernetes", "grpc_response_status": ""},
		"destination": {"source_workload": "productpage-v1", "destination_workload": "reviews-v2", "destination_service": "reviews.default.svc.cluster.local",
			"destination_service_name": "reviews", "destination_service_namespace": "default", "response_code": "503",
			"response_flags": "FI", "connection_security_policy": "mutual_tls",
			"source_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"},
	}
	for _, m := range rq.GetMetric() {
		got := labelMap(m)
		w := want[got["reporter"]]
		if w == nil {
			t.Fatalf("reporter %q", got["reporter"])
		}
		for k, v := range w {
			if got[k] != v {
				t.Errorf("reporter %s: %s = %q, want %q", got["reporter"], k, got[k], v)
			}
		}
		if m.GetCounter().GetValue() != 1 {
			t.Errorf("count %v", m.GetCounter().GetValue())
		}
	}
	d := fams["istio_request_duration_milliseconds"]
	if d.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("duration type %v", d.GetType())
	}
	for _, m := range d.GetMetric() {
		h := m.GetHistogram()
		if len(h.GetBucket()) != len(DurationBuckets)+1 { // and +Inf
			t.Fatalf("buckets %d, want Istio's %d and +Inf", len(h.GetBucket()), len(DurationBuckets))
		}
		lm := labelMap(m)
		wantSum, wantLE := 12.0, 25.0
		if lm["reporter"] == "destination" {
			wantSum, wantLE = 3.0, 5.0
		}
		if h.GetSampleSum() != wantSum || h.GetSampleCount() != 1 {
			t.Errorf("%s: sum %v count %v", lm["reporter"], h.GetSampleSum(), h.GetSampleCount())
		}
		for _, b := range h.GetBucket() {
			in := b.GetUpperBound() >= wantLE
			if (b.GetCumulativeCount() == 1) != in {
				t.Errorf("%s: bucket le=%v count %d", lm["reporter"], b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
	}
	if fams["istio_response_bytes"].GetType() != dto.MetricType_HISTOGRAM || fams["istio_request_bytes"] == nil {
		t.Error("byte histograms missing")
	}
}

func TestUnknownWithoutPeer(t *testing.T) {
	b := NewBuilder(Local{Peer: reviews})
	var l Labels
	b.Build(&telemetry.Record{Protocol: "HTTP/2", ResponseCode: 200, Authority: "10.0.0.1:9080",
		RequestHeaders: headers.List{{Name: "content-type", Value: "application/grpc"}}, GRPCStatus: "0"}, &l)
	for _, lb := range []Label{SourceWorkload, SourceWorkloadNamespace, SourcePrincipal, SourceApp, SourceVersion, SourceCluster} {
		if l.Std[lb] != Unknown {
			t.Errorf("%s = %q, want unknown", lb, l.Std[lb])
		}
	}
	if l.Std[RequestProtocol] != "grpc" || l.Std[GRPCResponseStatus] != "0" || l.Std[ConnectionSecurityPolicy] != "none" {
		t.Errorf("protocol %q grpc %q policy %q", l.Std[RequestProtocol], l.Std[GRPCResponseStatus], l.Std[ConnectionSecurityPolicy])
	}
}

func TestTCPMetricsAndOverrides(t *testing.T) {
	reg := New(0)
	b := NewBuilder(Local{Peer: reviews})
	var l Labels
	b.Build(&telemetry.Record{TCP: true, Authority: "mongo.default.svc.cluster.local:27017"}, &l)
	s := reg.TCPSeries(&l)
	s.Opened()
	s.Bytes(10, 20)
	s.Bytes(1, 2)
	s.Closed()
	// Two requests differing only in response_code: with the label removed
	// from REQUEST_COUNT they fold into one series with count 2.
	b.Build(&telemetry.Record{ResponseCode: 200, Authority: "reviews"}, &l)
	reg.RecordRequest(&l, time.Millisecond, 0, 0)
	b.Build(&telemetry.Record{ResponseCode: 500, Authority: "reviews"}, &l)
	reg.RecordRequest(&l, time.Millisecond, 0, 0)
	cfg := &Config{}
	cfg.Removed[RequestCount][ResponseCode] = true
	cfg.Disabled[RequestSize] = true
	reg.SetConfig(cfg)
	fams := parse(t, reg)
	if got := fams["istio_tcp_sent_bytes_total"].GetMetric(); len(got) != 1 || got[0].GetCounter().GetValue() != 11 {
		t.Fatalf("sent bytes %v", got)
	}
	if _, ok := labelMap(fams["istio_tcp_sent_bytes_total"].GetMetric()[0])["response_code"]; ok {
		t.Error("TCP metrics carry response_code")
	}
	if got := fams["istio_tcp_received_bytes_total"].GetMetric()[0].GetCounter().GetValue(); got != 22 {
		t.Errorf("received %v", got)
	}
	for _, n := range []string{"istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total"} {
		if got := fams[n].GetMetric()[0].GetCounter().GetValue(); got != 1 {
			t.Errorf("%s = %v", n, got)
		}
	}
	rq := fams["istio_requests_total"].GetMetric()
	if len(rq) != 1 || rq[0].GetCounter().GetValue() != 2 {
		t.Fatalf("requests with response_code removed: %v", rq)
	}
	if _, ok := labelMap(rq[0])["response_code"]; ok {
		t.Error("removed label still written")
	}
	if len(fams["istio_request_duration_milliseconds"].GetMetric()) != 2 {
		t.Error("the removal leaked into another metric")
	}
	if fams["istio_request_bytes"] != nil {
		t.Error("disabled metric written")
	}
}

func TestSeriesCapCountsOverflow(t *testing.T) {
	reg := New(3)
	var l Labels
	for i := range 5 {
		l.Std[SourceWorkload] = fmt.Sprint("w", i)
		reg.RecordRequest(&l, 0, 0, 0)
	}
	if reg.Series() != 3 || reg.Overflow() != 2 {
		t.Fatalf("series %d overflow %d", reg.Series(), reg.Overflow())
	}
	if v := parse(t, reg)["istio_metric_series_overflow_total"].GetMetric()[0].GetCounter().GetValue(); v != 2 {
		t.Errorf("overflow counter %v", v)
	}
}

func TestLabelValuesEscaped(t *testing.T) {
	reg := New(0)
	var l Labels
	l.Std[SourceWorkload] = "a\"b\\c\nd"
	reg.RecordRequest(&l, 0, 0, 0)
	m := parse(t, reg)["istio_requests_total"].GetMetric()[0]
	if got := labelMap(m)["source_workload"]; got != l.Std[SourceWorkload] {
		t.Errorf("round trip %q", got)
	}
}

func TestRecordKnownLabelSetDoesNotAllocate(t *testing.T) {
	reg := New(0)
	b := NewBuilder(Local{Peer: reviews})
	rec := telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage, Flags: telemetry.UpstreamConnectionFailure}
	var l Labels
	b.Build(&rec, &l)
	reg.RecordRequest(&l, time.Millisecond, 10, 10)
	if n := testing.AllocsPerRun(100, func() {
		b.Build(&rec, &l)
		reg.RecordRequest(&l, time.Millisecond, 10, 10)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// BenchmarkRecord is the cost of building the labels and recording one
// request of a known label set.
func BenchmarkRecord(b *testing.B) {
	reg := New(0)
	bl := NewBuilder(Local{Peer: reviews})
	rec := telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage}
	var l Labels
	b.ReportAllocs()
	for b.Loop() {
		bl.Build(&rec, &l)
		reg.RecordRequest(&l, time.Millisecond, 10, 10)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	reg := New(0)
	bl := NewBuilder(Local{Peer: reviews})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rec := telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage}
		var l Labels
		for pb.Next() {
			bl.Build(&rec, &l)
			reg.RecordRequest(&l, time.Millisecond, 10, 10)
		}
	})
}

// BenchmarkMemory1000LabelSets reports the heap held by 1,000 distinct
// label sets (bytes/series) and the cost of writing them.
func BenchmarkMemory1000LabelSets(b *testing.B) {
	for b.Loop() {
		reg := New(0)
		bl := NewBuilder(Local{Peer: reviews})
		peers := make([]telemetry.Peer, 1000)
		for i := range peers {
			peers[i] = productpage
			peers[i].Workload = fmt.Sprintf("productpage-v%d", i)
		}
		var l Labels
		before := heapInUse()
		for i := range peers {
			bl.Build(&telemetry.Record{ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &peers[i]}, &l)
			reg.RecordRequest(&l, time.Millisecond, 1, 1)
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/1000, "heap-bytes/series")
		var buf bytes.Buffer
		reg.Write(&buf)
		b.ReportMetric(float64(buf.Len()), "exposition-bytes")
	}
}

// gRPC message counters have Istio's label set for them: no protocol,
// response code, gRPC status, flags or security policy.
func TestMessageMetrics(t *testing.T) {
	reg := New(0)
	b := NewBuilder(Local{Peer: reviews})
	rec := &telemetry.Record{Protocol: "HTTP/2", ResponseCode: 200, GRPCStatus: "0", Authority: "reviews:9080", DownstreamPeer: &productpage, DownstreamMTLS: true}
	var l Labels
	b.BuildMessages(rec, &l)
	m := reg.MessageSeries(&l)
	m.Add(3, 13)
	m.Add(5, 14)
	fams := parse(t, reg)
	for name, want := range map[string]float64{"istio_request_messages_total": 8, "istio_response_messages_total": 27} {
		ms := fams[name].GetMetric()
		if len(ms) != 1 || ms[0].GetCounter().GetValue() != want {
			t.Fatalf("%s: %v", name, ms)
		}
		lm := labelMap(ms[0])
		for _, absent := range []string{"request_protocol", "response_code", "grpc_response_status", "response_flags", "connection_security_policy"} {
			if _, ok := lm[absent]; ok {
				t.Errorf("%s carries %s", name, absent)
			}
		}
		if lm["source_workload"] != "productpage-v1" || lm["destination_workload"] != "reviews-v2" || lm["reporter"] != "destination" {
			t.Errorf("%s labels %v", name, lm)
		}
	}
	if n := testing.AllocsPerRun(100, func() { b.BuildMessages(rec, &l); reg.MessageSeries(&l).Add(1, 1) }); n != 0 {
		t.Errorf("%v allocations per message report", n)
	}
}

// TestWriteAllocationsPerSeries: a scrape allocates a few times per series
// (its rendered labels and snapshot per metric), not per sample line (a
// histogram series has 22 or 33 of them).
func TestWriteAllocationsPerSeries(t *testing.T) {
	allocs := func(series int) float64 {
		reg := New(0)
		b := NewBuilder(Local{Peer: reviews})
		for i := range series {
			rec := telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200 + i, Authority: "reviews:9080", DownstreamPeer: &productpage}
			var l Labels
			b.Build(&rec, &l)
			reg.RecordRequest(&l, time.Millisecond, 10, 10)
		}
		return testing.AllocsPerRun(10, func() { reg.Write(io.Discard) })
	}
	few, many := allocs(4), allocs(44)
	if per := (many - few) / 40; per > 20 {
		t.Errorf("%.1f allocations per series and scrape (%.0f for 4 series, %.0f for 44), want at most 20 (it was 126 with a fmt-style writer)", per, few, many)
	}
}
