package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// sidecarPage is a Bookinfo-like sidecar's /stats/prometheus: 30 clusters'
// Envoy stats (17 samples each) and 30 connection manager stats, then
// Istio's standard metrics from the sidecar's own registry (both
// reporters, three services, two response codes: every histogram with its
// buckets), as mast-proxy writes them.
func sidecarPage(tb testing.TB) string {
	var b strings.Builder
	names := []string{"cluster_membership_total", "cluster_upstream_cx_active", "cluster_upstream_cx_connect_fail", "cluster_upstream_cx_total",
		"cluster_upstream_rq_active", "cluster_upstream_rq_hedge_cancelled", "cluster_upstream_rq_hedged", "cluster_upstream_rq_pending_overflow",
		"cluster_upstream_rq_per_try_timeout", "cluster_upstream_rq_retry", "cluster_upstream_rq_retry_overflow", "cluster_upstream_rq_timeout",
		"cluster_upstream_rq_total"}
	for _, n := range names {
		fmt.Fprintf(&b, "# TYPE envoy_%s counter\n", n)
		for c := range 30 {
			fmt.Fprintf(&b, "envoy_%s{envoy_cluster_name=\"outbound|9080|v%d||svc%d.default.svc.cluster.local\"} %d\n", n, c%3, c, c*7)
		}
	}
	b.WriteString("# TYPE envoy_cluster_upstream_rq_xx counter\n")
	for c := range 30 {
		for x := 2; x <= 5; x++ {
			fmt.Fprintf(&b, "envoy_cluster_upstream_rq_xx{envoy_cluster_name=\"outbound|9080|v%d||svc%d.default.svc.cluster.local\",envoy_response_code_class=\"%d\"} %d\n", c%3, c, x, c*x)
		}
	}
	for i := range 30 {
		fmt.Fprintf(&b, "# TYPE envoy_http_downstream_stat_%d counter\nenvoy_http_downstream_stat_%d %d\n", i, i, i)
	}
	reg := metrics.New(0)
	self := telemetry.Peer{Workload: "productpage-v1", Namespace: "default", App: "productpage", Version: "v1", CanonicalService: "productpage", CanonicalRevision: "v1"}
	bld := metrics.NewBuilder(metrics.Local{Peer: self, Principal: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"})
	var l metrics.Labels
	for i, svc := range []string{"reviews", "details", "ratings"} {
		peer := telemetry.Peer{Workload: svc + "-v1", Namespace: "default", App: svc, Version: "v1", CanonicalService: svc, CanonicalRevision: "v1"}
		for _, code := range []int{200, 503} {
			out := telemetry.Record{Outbound: true, Protocol: "HTTP/1.1", ResponseCode: code, UpstreamCluster: "outbound|9080||" + svc + ".default.svc.cluster.local",
				UpstreamPeer: &peer, Authority: svc + ":9080"}
			bld.Build(&out, &l)
			for n := range 20 + 10*i {
				reg.RecordRequest(&l, time.Duration(n)*time.Millisecond, 100, 2000)
			}
			in := telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: code, Authority: "productpage:9080", DownstreamPeer: &peer, DownstreamMTLS: true}
			bld.Build(&in, &l)
			reg.RecordRequest(&l, time.Duration(3+i)*time.Millisecond, 0, 18)
		}
	}
	var m bytes.Buffer
	if err := reg.Write(&m); err != nil {
		tb.Fatal(err)
	}
	b.Write(m.Bytes())
	return b.String()
}

// filterPage keeps the families of page whose name re matches, as
// mast-proxy's /stats/prometheus?filter= does.
func filterPage(page string, re *regexp.Regexp) string {
	var b strings.Builder
	keep := true
	for _, line := range strings.SplitAfter(page, "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ := strings.Cut(rest, " ")
			keep = re.MatchString(name)
		}
		if keep {
			b.WriteString(line)
		}
	}
	return b.String()
}

// statsServer serves page as a proxy's /stats/prometheus, honouring
// ?filter= unless refuse, in which case a filter is a 400. It records the
// raw queries it was asked.
type statsServer struct {
	page   string
	refuse bool
	mu     sync.Mutex
	asked  []string
}

func (s *statsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.asked = append(s.asked, r.URL.RawQuery)
	s.mu.Unlock()
	page := s.page
	if f := r.URL.Query().Get("filter"); f != "" {
		re, err := regexp.Compile(f)
		if err != nil || s.refuse {
			http.Error(w, "parameter filter", http.StatusBadRequest)
			return
		}
		page = filterPage(page, re)
	}
	w.Header().Set("content-type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(page))
}

// TestScrapeAsksForItsFamilies: the scraper's request filters on the two
// families it reads, gets a page a fraction of the whole, and its series
// are those of the whole page; a proxy that refuses the filter is asked
// again without it, with the same result.
func TestScrapeAsksForItsFamilies(t *testing.T) {
	page := sidecarPage(t)
	want, err := parseStats(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 12 {
		t.Fatalf("the page has %d standard series, want 12", len(want))
	}
	for _, refuse := range []bool{false, true} {
		srv := &statsServer{page: page, refuse: refuse}
		hs := httptest.NewServer(srv)
		cfg := Config{ScrapeInterval: time.Second}
		cfg.defaults()
		s := newScraper(&cfg)
		got, err := s.scrape(context.Background(), hs.URL+"/stats/prometheus")
		hs.Close()
		if err != nil {
			t.Fatalf("refuse %v: %v", refuse, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("refuse %v: the filtered scrape's series differ from the whole page's", refuse)
		}
		wantAsked := []string{"filter=%5E%28istio_requests_total%7Cistio_request_duration_milliseconds%29%24"}
		if refuse {
			wantAsked = append(wantAsked, "")
		}
		if !reflect.DeepEqual(srv.asked, wantAsked) {
			t.Errorf("refuse %v: asked %q, want %q", refuse, srv.asked, wantAsked)
		}
	}
	re := regexp.MustCompile("^(" + requestsTotal + "|" + requestDuration + ")$")
	if f := filterPage(page, re); len(f) > len(page)/2 {
		t.Errorf("the filtered page is %d of %d bytes", len(f), len(page))
	}
}

// BenchmarkParseStats is mastd's side of one scrape of a Bookinfo-like
// sidecar (sidecarPage): parsing the whole page, and the page the
// dashboard's filter asks for.
func BenchmarkParseStats(b *testing.B) {
	page := sidecarPage(b)
	re := regexp.MustCompile("^(" + requestsTotal + "|" + requestDuration + ")$")
	for _, c := range []struct{ name, page string }{{"full", page}, {"filtered", filterPage(page, re)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.page)))
			for b.Loop() {
				if _, err := parseStats(strings.NewReader(c.page)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScrape is one scrape as a round does it (request, response,
// parse) of a loopback server that writes the filtered page as it is:
// BenchmarkParseStats/filtered plus the fetch (and the server's net/http,
// in the same process).
func BenchmarkScrape(b *testing.B) {
	re := regexp.MustCompile("^(" + requestsTotal + "|" + requestDuration + ")$")
	page := []byte(filterPage(sidecarPage(b), re))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(page)
	}))
	defer hs.Close()
	cfg := Config{ScrapeInterval: time.Second}
	cfg.defaults()
	s := newScraper(&cfg)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.scrape(context.Background(), hs.URL+"/stats/prometheus"); err != nil {
			b.Fatal(err)
		}
	}
}
