package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// promQuery runs an instant query against a real Prometheus and returns
// each series' labels with its value.
func promQuery(t *testing.T, query string) []promSample {
	t.Helper()
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := getJSON(ctx, "http://127.0.0.1:9090/api/v1/query?query="+url.QueryEscape(query), &resp); err != nil {
		t.Fatalf("prometheus %s: %v", query, err)
	}
	var out []promSample
	for _, r := range resp.Data.Result {
		s, _ := r.Value[1].(string)
		v, _ := strconv.ParseFloat(s, 64)
		out = append(out, promSample{r.Metric, v})
	}
	return out
}

type promSample struct {
	labels map[string]string
	value  float64
}

// edges sums samples by source -> destination workload (reviews-v1/2/3
// folded into "reviews", reviews-v2/v3 callers of ratings into "reviews").
func edges(samples []promSample, filter func(map[string]string) bool) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples {
		if filter != nil && !filter(s.labels) {
			continue
		}
		src, dst := s.labels["source_workload"], s.labels["destination_workload"]
		src = regexp.MustCompile(`^reviews-v[123]$`).ReplaceAllString(src, "reviews")
		dst = regexp.MustCompile(`^reviews-v[123]$`).ReplaceAllString(dst, "reviews")
		out[src+"->"+dst] += s.value
	}
	return out
}

// TestTelemetryBookinfoPrometheus: `mast up --addons prometheus`, 100 page
// loads through the gateway, then a real Prometheus scraping every proxy
// answers Istio's dashboard queries with the four Bookinfo edges, counts
// matching the requests sent, mutual TLS on every edge; a fault-injected
// abort is counted with code 500 and flag FI; each sidecar's log holds
// Istio's default access log line.
func TestTelemetryBookinfoPrometheus(t *testing.T) {
	dir := compatDir(t)
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skip("needs Prometheus: apt-get install -y prometheus (.ci/run installs it)")
	}
	m := &mesh{t: t, stateDir: t.TempDir(), monitor: "127.0.0.1:15014", gateway: "http://127.0.0.1:8080"}
	m.up = startBinary(t, copyBinary(t, "mast"), "up", "--state-dir", m.stateDir, "--addons", "prometheus")
	waitLine(t, m.up, "Press Ctrl-C to stop", 2*time.Minute)
	if !strings.Contains(m.up.Output(), "Prometheus       http://127.0.0.1:9090") {
		t.Fatalf("mast up did not print Prometheus's URL:\n%s", m.up.Output())
	}
	total := `sum(istio_requests_total{reporter="destination"}) by (source_workload,destination_workload,response_code,connection_security_policy)`
	// What the readiness probes and Prometheus's first scrapes saw.
	var base map[string]float64
	eventually(t, time.Minute, "Prometheus scraping every proxy", func() error {
		up := promQuery(t, `sum(up{job="envoy-stats"})`)
		if len(up) != 1 || up[0].value != 7 {
			return fmt.Errorf("up = %v, want 7 proxies", up)
		}
		base = edges(promQuery(t, total), nil)
		return nil
	})
	client := &http.Client{Timeout: 30 * time.Second}
	const n = 100
	reviewsWithRatings := 0
	for i := 0; i < n; i++ {
		v := instanceRE.FindString(m.page(client))
		if v == "reviews-v2" || v == "reviews-v3" {
			reviewsWithRatings++
		}
	}
	want := map[string]float64{
		"istio-ingressgateway->productpage-v1": n, "productpage-v1->details-v1": n,
		"productpage-v1->reviews": n, "reviews->ratings-v1": float64(reviewsWithRatings),
	}
	var got map[string]float64
	eventually(t, time.Minute, "the counts in Prometheus", func() error {
		got = edges(promQuery(t, total), nil)
		for e, w := range want {
			if d := got[e] - base[e]; math.Abs(d-w) > 0.02*w {
				return fmt.Errorf("%s: %v requests, want %v ± 2%% (all: %v, before: %v)", e, d, w, got, base)
			}
		}
		return nil
	})
	for _, s := range promQuery(t, total) {
		if s.labels["connection_security_policy"] != "mutual_tls" || s.labels["response_code"] != "200" {
			t.Errorf("series %v: want mutual_tls and 200", s.labels)
		}
	}
	// The dashboard's query itself, over the last minute.
	rates := edges(promQuery(t, `sum(rate(istio_requests_total{reporter="destination"}[1m])) by (source_workload,destination_workload,response_code)`), nil)
	for e := range want {
		if rates[e] <= 0 {
			t.Errorf("rate query: no %s edge in %v", e, rates)
		}
	}
	if len(rates) != len(want) {
		t.Errorf("rate query edges %v, want exactly %v", rates, want)
	}

	// The receiving proxy names the service after its inbound cluster's
	// service, not the Host header the gateway's client sent (127.0.0.1).
	for _, s := range promQuery(t, `istio_requests_total{reporter="destination",destination_workload="productpage-v1"}`) {
		if s.labels["destination_service"] != "productpage.default.svc.cluster.local" || s.labels["destination_service_name"] != "productpage" {
			t.Errorf("productpage's inbound series names the service %q (%q), want productpage.default.svc.cluster.local",
				s.labels["destination_service"], s.labels["destination_service_name"])
		}
	}

	// Istio's default access log line, field by field, in the details sidecar's log.
	logb, err := os.ReadFile(filepath.Join(m.stateDir, "logs", "details-v1-sidecar.log"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] "(GET) (/details/0) (HTTP/1.1)" (200) (-) (via_upstream) (-) "(-)" (0) (\d+) (\d+) (\d+) "([^"]*)" "([^"]*)" "([0-9a-f-]{36})" "(details:9080)" "(127\.0\.0\.1:\d+)" (inbound\|9080\|\|) (-) (127\.0\.1\.2:9080) (127\.0\.0\.1:\d+) (-) (\S+)$`)
	if !line.Match(logb) {
		t.Errorf("no access log line in Istio's default format for GET /details/0 in the details sidecar's log:\n%s", tailLines(string(logb), 5))
	}

	// A fault-injected abort (Istio's ratings-test-abort for jason) is
	// counted by the calling sidecar with code 500 and flag FI.
	m.apply(filepath.Join(dir, "virtual-service-all-v1.yaml"), filepath.Join(dir, "virtual-service-reviews-test-v2.yaml"),
		filepath.Join(dir, "virtual-service-ratings-test-abort.yaml"))
	jason := m.login("jason")
	for i := 0; i < 5; i++ {
		if p := m.page(jason); !strings.Contains(p, "Ratings service is currently unavailable") {
			t.Fatalf("page %d for jason: the ratings abort did not show", i)
		}
	}
	eventually(t, time.Minute, "the FI abort in Prometheus", func() error {
		s := promQuery(t, `sum(istio_requests_total{reporter="source",response_flags="FI"}) by (source_workload,destination_service_name,response_code)`)
		if len(s) != 1 || s[0].labels["source_workload"] != "reviews-v2" || s[0].labels["destination_service_name"] != "ratings" ||
			s[0].labels["response_code"] != "500" || s[0].value < 5 {
			return fmt.Errorf("FI series %v, want reviews-v2 -> ratings, 500, at least 5", s)
		}
		return nil
	})

	telemetryMetricsOverrides(t, m, client)
}

// telemetryMetricsOverrides applies a Telemetry API metrics override and
// checks that Prometheus sees it without a restart: on the server side,
// istio_requests_total loses request_protocol and gains request_host and
// caller_app (CEL values over Istio's attributes) for the requests made
// after the change, istio_request_bytes is disabled everywhere; the client
// side keeps Istio's labels.
func telemetryMetricsOverrides(t *testing.T, m *mesh, client *http.Client) {
	dir := t.TempDir()
	writeFile(t, dir, "metrics.yaml", `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-metrics, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      tagOverrides:
        request_protocol: {operation: REMOVE}
        request_host: {value: "request.host"}
        caller_app: {value: "downstream_peer.labels['app']"}
    - match: {metric: REQUEST_SIZE}
      disabled: true
`)
	m.apply(filepath.Join(dir, "metrics.yaml"))
	for i := 0; i < 10; i++ {
		m.page(client)
	}
	eventually(t, time.Minute, "the metrics overrides in Prometheus", func() error {
		srv := promQuery(t, `istio_requests_total{reporter="destination",destination_workload="details-v1"}`)
		if len(srv) == 0 {
			return fmt.Errorf("no server-side series for details")
		}
		// Requests counted before the change keep their series, now
		// written without request_protocol and with "unknown" for the
		// dimensions they were not recorded with.
		after := 0.0
		for _, s := range srv {
			if _, ok := s.labels["request_protocol"]; ok {
				return fmt.Errorf("details' server-side series %v still has request_protocol", s.labels)
			}
			if s.labels["request_host"] == "details:9080" && s.labels["caller_app"] == "productpage" {
				after += s.value
			}
		}
		if after < 10 {
			return fmt.Errorf("details' server-side requests with request_host=details:9080, caller_app=productpage: %v, want the 10 page loads (series: %v)", after, srv)
		}
		cli := promQuery(t, `istio_requests_total{reporter="source",source_workload="productpage-v1"}`)
		if len(cli) == 0 {
			return fmt.Errorf("no client-side series for productpage")
		}
		for _, s := range cli {
			if _, ok := s.labels["request_host"]; ok || s.labels["request_protocol"] != "http" {
				return fmt.Errorf("client-side series reshaped by a SERVER override: %v", s.labels)
			}
		}
		if s := promQuery(t, `istio_request_bytes_count`); len(s) != 0 {
			return fmt.Errorf("istio_request_bytes still reported: %d series", len(s))
		}
		if s := promQuery(t, `istio_response_bytes_count`); len(s) == 0 {
			return fmt.Errorf("istio_response_bytes gone too")
		}
		return nil
	})
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
