package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// resilienceConfig: three replicas behind hedge, nohedge, latency and
// budget hosts: fast a (%[1]d), fast b (%[2]d) and slow c (%[3]d, 2 s, or
// 300 ms for latency.example.test); budget.example.test and
// nobudget.example.test have one endpoint that fails slowly (%[4]d). The
// client's Sidecar binds port 8080 on %[5]s. The web workload (at %[7]s,
// app 127.0.0.1:%[6]d, whose latency grows with its load) has the adaptive
// concurrency annotation.
const resilienceConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: replicas, namespace: default}
spec:
  hosts: [hedge.example.test, nohedge.example.test, latency.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: %[1]d}}
  - {address: 127.0.0.1, ports: {http: %[2]d}}
  - {address: 127.0.0.1, ports: {http: %[3]d}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: hedge
  namespace: default
  annotations: {networking.mast.io/hedge-on-per-try-timeout: "true"}
spec:
  hosts: [hedge.example.test]
  http:
  - route: [{destination: {host: hedge.example.test}}]
    timeout: 10s
    retries: {attempts: 2, perTryTimeout: 200ms, retryOn: connect-failure}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nohedge, namespace: default}
spec:
  hosts: [nohedge.example.test]
  http:
  - route: [{destination: {host: nohedge.example.test}}]
    timeout: 10s
    retries: {attempts: 2, perTryTimeout: 200ms, retryOn: connect-failure}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: latency
  namespace: default
  annotations: {networking.mast.io/latency-outlier: "requestVolume=2,minimumExcess=50ms"}
spec:
  host: latency.example.test
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 1000, interval: 1s, baseEjectionTime: 10m, maxEjectionPercent: 34}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: budget, namespace: default}
spec:
  hosts: [budget.example.test, nobudget.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[4]d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: budget, namespace: default}
spec:
  host: budget.example.test
  trafficPolicy: {retryBudget: {percent: 0, minRetryConcurrency: 1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: budget, namespace: default}
spec:
  hosts: [budget.example.test]
  http: [{route: [{destination: {host: budget.example.test}}], retries: {attempts: 3, retryOn: 5xx}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nobudget, namespace: default}
spec:
  hosts: [nobudget.example.test]
  http: [{route: [{destination: {host: nobudget.example.test}}], retries: {attempts: 3, retryOn: 5xx}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 8080, protocol: HTTP, name: http}
    bind: %[5]s
    captureMode: NONE
    hosts: ["./*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: default}
spec: {address: %[7]s, ports: {http: 9080}, labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: default}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:%[6]d
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: web
  namespace: default
  annotations: {networking.mast.io/adaptive-concurrency: "updateInterval=50ms,minRTTInterval=1h,requestCount=10,minConcurrency=2"}
spec:
  host: web.default.svc.cluster.local
`

// replica is a test backend that names itself, counts its requests and the
// requests whose client went away before the answer (a cancelled hedge).
type replica struct {
	name      string
	delay     atomic.Int64 // ns before answering
	served    atomic.Int64
	cancelled atomic.Int64
	port      int
}

func startReplica(t *testing.T, name string, delay time.Duration) *replica {
	t.Helper()
	r := &replica{name: name}
	r.delay.Store(int64(delay))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.served.Add(1)
		if d := time.Duration(r.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-req.Context().Done():
				r.cancelled.Add(1)
				return
			}
		}
		io.WriteString(w, r.name)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	r.port = l.Addr().(*net.TCPAddr).Port
	return r
}

// loadApp answers in 5 ms, or, once degraded, after 10 ms per request in
// flight (its latency grows with its load); it records the most requests
// it had in flight at once.
func loadApp(t *testing.T) (port int, degraded *atomic.Bool, peak *atomic.Int64) {
	t.Helper()
	var inflight atomic.Int64
	peak, degraded = new(atomic.Int64), new(atomic.Bool)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		d := 5 * time.Millisecond
		if degraded.Load() {
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			d = time.Duration(n) * 10 * time.Millisecond
		}
		time.Sleep(d)
		io.WriteString(w, "web")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port, degraded, peak
}

// statValue is the value of a proxy's metric with the given label value
// (any label; "" for the first sample), or -1.
func statValue(fams map[string]*dto.MetricFamily, name, label string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		match := label == ""
		for _, l := range m.GetLabel() {
			match = match || l.GetValue() == label
		}
		if !match {
			continue
		}
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

// TestResilienceExtensions takes Mast's resilience features from Istio YAML
// through real mastd and real mast-proxy processes, with one slow replica
// out of three:
//   - hedging (VirtualService annotation): a request whose try passes the
//     per-try timeout on the slow replica is answered by a fast one and the
//     slow try is cancelled; without the annotation, the same requests fail
//     with the per-try timeout (the retry policy does not retry timeouts);
//   - latency-based ejection (DestinationRule annotation): the slow replica
//     is ejected (stats and /clusters say so) and gets no more traffic;
//   - retryBudget: with percent 0 and minRetryConcurrency 1, concurrent
//     failing requests retry one at a time and the rest overflow; without a
//     budget, every retry is made;
//   - adaptive concurrency (DestinationRule annotation, on the workload's
//     inbound listener): an application whose latency grows with its load
//     gets far fewer requests at once than clients send, and the excess gets
//     Envoy's 503 "reached concurrency limit", counted in rq_blocked.
func TestResilienceExtensions(t *testing.T) {
	a, b, c := startReplica(t, "a", 0), startReplica(t, "b", 0), startReplica(t, "c", 2*time.Second)
	slowFail := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		w.WriteHeader(503)
	})}
	fl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go slowFail.Serve(fl)
	t.Cleanup(func() { slowFail.Close() })
	appPort, degraded, peak := loadApp(t)

	ip, webIP := uniqueLoopback(), uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "resilience.yaml", fmt.Sprintf(resilienceConfig, a.port, b.port, c.port, fl.Addr().(*net.TCPAddr).Port, ip, appPort, webIP))
	xdsAddr := startControlPlane(t, dir)
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~web-1.default~default.svc.cluster.local", webIP),
		"--xds-addr", xdsAddr, "--admin-addr", webIP+":15000", "--drain-period", "1s",
		"--labels", "app=web", "--meta", "INTERCEPTION_MODE=NONE")

	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	get := func(host, addr string) (int, string, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	via := ip + ":8080"
	eventually(t, 30*time.Second, "the sidecar routes hedge.example.test", func() error {
		code, _, err := get("nobudget.example.test", via)
		if err == nil && code != 503 {
			err = fmt.Errorf("status %d, want the failing backend's 503", code)
		}
		return err
	})
	stats := func(addr string) map[string]*dto.MetricFamily {
		t.Helper()
		f, err := scrapeStats(addr + ":15000")
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	t.Run("hedging", func(t *testing.T) {
		c.served.Store(0)
		c.cancelled.Store(0)
		for i := 0; i < 30; i++ {
			code, body, err := get("hedge.example.test", via)
			if err != nil || code != 200 || (body != "a" && body != "b") {
				t.Fatalf("request %d: %d %q %v, want 200 from a fast replica", i, code, body, err)
			}
		}
		if c.served.Load() == 0 {
			t.Fatal("no request reached the slow replica: nothing to hedge")
		}
		// The slow replica's tries were cancelled, none answered.
		eventually(t, 10*time.Second, "every try on the slow replica is cancelled", func() error {
			if s, x := c.served.Load(), c.cancelled.Load(); s != x {
				return fmt.Errorf("slow replica: %d tries, %d cancelled", s, x)
			}
			return nil
		})
		f := stats(ip)
		hedged := statValue(f, "envoy_cluster_upstream_rq_hedged", "outbound|8080||hedge.example.test")
		lost := statValue(f, "envoy_cluster_upstream_rq_hedge_cancelled", "outbound|8080||hedge.example.test")
		if hedged < float64(c.served.Load()) || lost != float64(c.served.Load()) {
			t.Errorf("rq_hedged %v, rq_hedge_cancelled %v; the slow replica had %d tries", hedged, lost, c.served.Load())
		}
	})
	t.Run("no hedging without the annotation", func(t *testing.T) {
		c.served.Store(0)
		timeouts := 0
		for i := 0; i < 30; i++ {
			code, body, err := get("nohedge.example.test", via)
			switch {
			case err != nil:
				t.Fatal(err)
			case code == 504:
				timeouts++
			case code != 200 || (body != "a" && body != "b"):
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
		if s := c.served.Load(); s == 0 || int64(timeouts) != s {
			t.Errorf("%d requests timed out; the slow replica had %d (want the same, > 0): without hedging, a fast replica does not answer them", timeouts, s)
		}
	})

	t.Run("latency ejection", func(t *testing.T) {
		c.delay.Store(int64(300 * time.Millisecond))
		cluster := "outbound|8080||latency.example.test"
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					get("latency.example.test", via)
				}
			}()
		}
		eventually(t, 30*time.Second, "the slow replica is ejected for latency", func() error {
			if v := statValue(stats(ip), "envoy_cluster_outlier_detection_ejections_enforced_latency", cluster); v < 1 {
				return fmt.Errorf("ejections_enforced_latency %v", v)
			}
			return nil
		})
		close(stop)
		wg.Wait()
		f := stats(ip)
		if v := statValue(f, "envoy_cluster_outlier_detection_ejections_active", cluster); v != 1 {
			t.Errorf("ejections_active %v, want 1", v)
		}
		resp, err := http.Get("http://" + ip + ":15000/clusters")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf("%s::127.0.0.1:%d::health_flags::/failed_outlier_check", cluster, c.port)
		if !strings.Contains(string(body), want) {
			t.Errorf("/clusters lacks %q:\n%s", want, body)
		}
		for _, r := range []*replica{a, b} {
			if strings.Contains(string(body), fmt.Sprintf("%s::127.0.0.1:%d::health_flags::/failed", cluster, r.port)) {
				t.Errorf("fast replica %s ejected", r.name)
			}
		}
		before := c.served.Load()
		for i := 0; i < 30; i++ {
			if code, body, err := get("latency.example.test", via); err != nil || code != 200 || body == "c" {
				t.Fatalf("request %d after the ejection: %d %q %v", i, code, body, err)
			}
		}
		if n := c.served.Load() - before; n != 0 {
			t.Errorf("the ejected replica got %d of 30 requests", n)
		}
	})

	t.Run("retryBudget", func(t *testing.T) {
		run := func(host string) {
			var wg sync.WaitGroup
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if code, _, err := get(host, via); err != nil || code != 503 {
						t.Errorf("%s: %d %v, want 503", host, code, err)
					}
				}()
			}
			wg.Wait()
		}
		run("budget.example.test")
		run("nobudget.example.test")
		f := stats(ip)
		for _, tc := range []struct {
			host          string
			overflowAtAll bool
		}{{"budget.example.test", true}, {"nobudget.example.test", false}} {
			cl := "outbound|8080||" + tc.host
			retries, overflow := statValue(f, "envoy_cluster_upstream_rq_retry", cl), statValue(f, "envoy_cluster_upstream_rq_retry_overflow", cl)
			switch {
			case tc.overflowAtAll && (overflow < 1 || retries >= 30):
				t.Errorf("%s (budget of 1 retry at once): %v retries, %v overflowed; want some refused", tc.host, retries, overflow)
			case !tc.overflowAtAll && overflow != 0:
				t.Errorf("%s (no budget): %v retries overflowed, want 0", tc.host, overflow)
			}
		}
	})

	t.Run("adaptive concurrency", func(t *testing.T) {
		web := webIP + ":9080"
		eventually(t, 30*time.Second, "the web workload's inbound listener", func() error {
			_, _, err := get("web.default.svc.cluster.local", web)
			return err
		})
		prefix := "inbound|9080||"
		limitName := "envoy_http_adaptive_concurrency_gradient_controller_concurrency_limit"
		blockedName := "envoy_http_adaptive_concurrency_gradient_controller_rq_blocked"
		// burst sends n requests from each of 40 clients at once and
		// counts the refusals.
		burst := func(n int) (refused, answered int64) {
			var blocked, ok atomic.Int64
			var wg sync.WaitGroup
			for w := 0; w < 40; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < n; i++ {
						code, body, err := get("web.default.svc.cluster.local", web)
						switch {
						case err != nil:
							t.Error(err)
							return
						case code == 503 && body == "reached concurrency limit":
							blocked.Add(1)
						case code == 200:
							ok.Add(1)
						default:
							t.Errorf("%d %q", code, body)
						}
					}
				}()
			}
			wg.Wait()
			return blocked.Load(), ok.Load()
		}
		// A healthy app (5 ms whatever its load): the limit rises until
		// the 40 clients all fit.
		eventually(t, 60*time.Second, "the concurrency limit rises to 40 while latency stays flat", func() error {
			burst(10)
			if l := statValue(stats(webIP), limitName, prefix); l < 40 {
				return fmt.Errorf("limit %v", l)
			}
			return nil
		})
		high := statValue(stats(webIP), limitName, prefix)
		blockedBefore := statValue(stats(webIP), blockedName, prefix)
		// Degraded, its latency grows with its load: the limit falls and
		// the excess is refused.
		degraded.Store(true)
		refused, answered := burst(15)
		f := stats(webIP)
		low, rqBlocked := statValue(f, limitName, prefix), statValue(f, blockedName, prefix)-blockedBefore
		t.Logf("limit %v healthy, %v degraded; degraded: %d answered, %d refused, the app had at most %d at once", high, low, answered, refused, peak.Load())
		if refused == 0 || rqBlocked != float64(refused) {
			t.Errorf("%d requests refused, rq_blocked grew by %v: want the same, > 0", refused, rqBlocked)
		}
		if low >= high || low >= 40 {
			t.Errorf("concurrency limit %v once degraded, %v before: want it to fall under the 40 clients", low, high)
		}
	})
}
