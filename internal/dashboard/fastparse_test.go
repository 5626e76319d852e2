package dashboard

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// FuzzParseStatsFast: whenever the fast path accepts a page, its series
// are exactly parseStats's (prometheus/common's parser) and that parser
// accepts the page too.
func FuzzParseStatsFast(f *testing.F) {
	var hist strings.Builder
	hist.WriteString("# TYPE istio_request_duration_milliseconds histogram\n")
	for _, le := range []string{"0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"} {
		hist.WriteString(`istio_request_duration_milliseconds_bucket{reporter="destination",source_workload="a\\b",response_code="200",le="` + le + `"} 7` + "\n")
	}
	hist.WriteString(`istio_request_duration_milliseconds_sum{reporter="destination",source_workload="a\\b",response_code="200"} 1.5e+06` + "\n")
	hist.WriteString(`istio_request_duration_milliseconds_count{reporter="destination",source_workload="a\\b",response_code="200"} 7` + "\n")
	f.Add(hist.String())
	f.Add("# TYPE istio_requests_total counter\nistio_requests_total{reporter=\"source\",response_code=\"200\"} 3\nistio_requests_total{reporter=\"source\",response_code=\"200\"} 4\n")
	f.Add("# TYPE istio_request_duration_milliseconds histogram\nistio_request_duration_milliseconds_bucket{reporter=\"d\",le=\"0.5\"} 1\nistio_request_duration_milliseconds_count{reporter=\"d\"} 1\n")
	f.Fuzz(func(t *testing.T, page string) {
		got, ok := parseStatsFast(page)
		if !ok {
			return
		}
		want, err := parseStats(strings.NewReader(page))
		if err != nil {
			t.Fatalf("fast path accepted what the parser refuses (%v):\n%q", err, page)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast path differs:\n%q", page)
		}
	})
}

// TestParseStatsFastSidecarPage: the fast path takes a real filtered page.
func TestParseStatsFastSidecarPage(t *testing.T) {
	re := regexp.MustCompile("^(" + requestsTotal + "|" + requestDuration + ")$")
	page := filterPage(sidecarPage(t), re)
	got, ok := parseStatsFast(page)
	if !ok {
		t.Fatal("the fast path refuses mast-proxy's filtered page")
	}
	want, err := parseStats(strings.NewReader(page))
	if err != nil || !reflect.DeepEqual(got, want) || len(got) != 12 {
		t.Fatalf("fast %d series, parser %d (%v)", len(got), len(want), err)
	}
}

func BenchmarkParseStatsFast(b *testing.B) {
	re := regexp.MustCompile("^(" + requestsTotal + "|" + requestDuration + ")$")
	page := filterPage(sidecarPage(b), re)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseStatsFast(page); !ok {
			b.Fatal("refused")
		}
	}
}
