package admin

import (
	"strings"
	"testing"
)

// TestWritePrometheusFormat pins the text format of /stats/prometheus:
// families sorted by name (samples of one family in their collected
// order) with one TYPE line each, label values quoted as Go's %q does.
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
envoy_vhost_route_upstream_rq_total{envoy_virtual_host="q\"uo\\te\nnl\x01é",envoy_route="r"} 3
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
