package admin

import (
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestWritePrometheusFormat pins the text format of /stats/prometheus:
// families sorted by name (samples of one family in their collected
// order) with one TYPE line each, label values quoted as the text format says (only \\, " and line feed
// escaped).
func TestWritePrometheusFormat(t *testing.T) {
	lbl := func(kv ...[2]string) (l [maxLabels][2]string, n uint8) {
		return l, uint8(copy(l[:], kv))
	}
	mk := func(name string, v int64, k kind, kv ...[2]string) stat {
		s := stat{name: name, value: v, kind: k}
		s.lbl, s.nlbl = lbl(kv...)
		return s
	}
	stats := []stat{
		mk("http_downstream_rq_total", 42, counter),
		mk("cluster_upstream_rq_xx", 7, counter, [2]string{"envoy_cluster_name", "outbound|80||a"}, [2]string{"envoy_response_code_class", "2"}),
		mk("cluster_upstream_cx_active", -1, gauge, [2]string{"envoy_cluster_name", "b"}),
		mk("cluster_upstream_rq_xx", 0, counter, [2]string{"envoy_cluster_name", "outbound|80||a"}, [2]string{"envoy_response_code_class", "5"}),
		mk("vhost_route_upstream_rq_total", 3, counter, [2]string{"envoy_virtual_host", "q\"uo\\te\nnl\x01é"}, [2]string{"envoy_route", "r"}),
		mk("cluster_upstream_cx_active", 2, gauge, [2]string{"envoy_cluster_name", "a"}),
	}
	var b strings.Builder
	writePrometheus(&b, stats)
	want := `# TYPE envoy_cluster_upstream_cx_active gauge
envoy_cluster_upstream_cx_active{envoy_cluster_name="b"} -1
envoy_cluster_upstream_cx_active{envoy_cluster_name="a"} 2
# TYPE envoy_cluster_upstream_rq_xx counter
envoy_cluster_upstream_rq_xx{envoy_cluster_name="outbound|80||a",envoy_response_code_class="2"} 7
envoy_cluster_upstream_rq_xx{envoy_cluster_name="outbound|80||a",envoy_response_code_class="5"} 0
# TYPE envoy_http_downstream_rq_total counter
envoy_http_downstream_rq_total 42
# TYPE envoy_vhost_route_upstream_rq_total counter
envoy_vhost_route_upstream_rq_total{envoy_virtual_host="q\"uo\\te\nnl` + "\x01" + `é",envoy_route="r"} 3
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestWritePrometheusLarge: a scrape longer than one write chunk comes out
// whole and in order.
func TestWritePrometheusLarge(t *testing.T) {
	var stats []stat
	var want strings.Builder
	want.WriteString("# TYPE envoy_cluster_upstream_rq_total counter\n")
	for i := range 2000 {
		s := stat{name: "cluster_upstream_rq_total", value: int64(i), nlbl: 1}
		s.lbl[0] = [2]string{"envoy_cluster_name", strings.Repeat("x", i%50)}
		stats = append(stats, s)
		want.WriteString(`envoy_cluster_upstream_rq_total{envoy_cluster_name="` + strings.Repeat("x", i%50) + `"} ` + itoa(i) + "\n")
	}
	var b strings.Builder
	writePrometheus(&b, stats)
	if b.String() != want.String() {
		t.Errorf("a %d-byte scrape differs from the expected %d bytes", b.Len(), want.Len())
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}

// TestAppendQuoted: every label value, each byte alone and inside a
// name, UTF-8 and invalid bytes, parses back with Prometheus's own text
// parser to itself (invalid UTF-8 as U+FFFD).
func TestAppendQuoted(t *testing.T) {
	cases := []string{"", "outbound|8080||echo.bench.svc.cluster.local", "é", "\xff", "a\u2028b", "tab\there", `q"uo\te`}
	for c := range 256 {
		cases = append(cases, string([]byte{byte(c)}), "outbound|80||"+string([]byte{byte(c)})+"x")
	}
	for _, s := range cases {
		line := string(appendQuoted([]byte("envoy_x{k="), s)) + "} 1\n"
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(line))
		if err != nil {
			t.Errorf("%q: %q does not parse: %v", s, line, err)
			continue
		}
		got := fams["envoy_x"].GetMetric()[0].GetLabel()[0].GetValue()
		if want := strings.ToValidUTF8(s, "\uFFFD"); got != want {
			t.Errorf("%q: %q parses as %q, want %q", s, line, got, want)
		}
	}
}

// BenchmarkWritePrometheus renders a scrape the size of a sidecar's under
// dpbench: about 30 clusters of 18 stats, with the connection manager's.
func BenchmarkWritePrometheus(b *testing.B) {
	var stats []stat
	for c := range 30 {
		l := [2]string{"envoy_cluster_name", "outbound|2808" + itoa(c%10) + "||echo" + itoa(c) + ".bench.svc.cluster.local"}
		for _, n := range []string{"cluster_upstream_rq_total", "cluster_upstream_rq_xx", "cluster_upstream_rq_xx", "cluster_upstream_rq_xx",
			"cluster_upstream_rq_xx", "cluster_upstream_rq_active", "cluster_upstream_rq_timeout", "cluster_upstream_rq_retry",
			"cluster_upstream_rq_pending_overflow", "cluster_upstream_rq_retry_overflow", "cluster_upstream_rq_per_try_timeout",
			"cluster_upstream_rq_hedged", "cluster_upstream_rq_hedge_cancelled", "cluster_upstream_cx_total",
			"cluster_upstream_cx_active", "cluster_upstream_cx_connect_fail", "cluster_membership_total"} {
			s := stat{name: n, value: int64(c), nlbl: 1}
			s.lbl[0] = l
			stats = append(stats, s)
		}
	}
	for i := range 30 {
		stats = append(stats, stat{name: "http_downstream_stat_" + itoa(i), value: int64(i)})
	}
	work := make([]stat, len(stats))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, stats)
		writePrometheus(io.Discard, work)
	}
}

// TestWritePrometheusFamilyOrder: with many families interleaved, each
// family's samples come out together and in collected order.
func TestWritePrometheusFamilyOrder(t *testing.T) {
	families := []string{"g", "c", "a", "f", "b", "e", "d"}
	var stats []stat
	for i := range 3000 {
		stats = append(stats, stat{name: families[(i*5+i/7)%len(families)], value: int64(i)})
	}
	var b strings.Builder
	writePrometheus(&b, stats)
	last := map[string]int{}
	prev := ""
	for line := range strings.Lines(b.String()) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, v, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(line, "envoy_"), "\n"), " ")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		if name < prev {
			t.Fatalf("family %s after %s", name, prev)
		}
		if l, ok := last[name]; ok && n <= l {
			t.Fatalf("family %s: sample %d after %d", name, n, l)
		}
		last[name], prev = n, name
	}
	if len(last) != len(families) {
		t.Errorf("%d families, want %d", len(last), len(families))
	}
}
