package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// onDemandServices: reviews and ratings (HTTP, port 9080), each with one
// workload on loopback.
const onDemandServices = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: default}
spec: {address: 127.0.0.1, ports: {http: %d}, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: default}
spec: {address: 127.0.0.1, ports: {http: %d}, labels: {app: ratings}}
`

// onDemandRouting sends reviews' traffic to ratings.
const onDemandRouting = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: ratings.default.svc.cluster.local}
`

// TestOnDemandRoutes: a real mast-proxy started with --on-demand-routes
// (Delta xDS) gets its route configuration from real mastd without virtual
// hosts (VHDS). curl's first request to a service is a miss: the proxy asks
// mastd for that host's virtual host, waits for it, and serves the request
// through it. A host mastd knows nothing of is answered 404 (no route) once
// mastd says so, and a VirtualService change made afterwards reaches the
// virtual host the proxy holds.
func TestOnDemandRoutes(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	reviews, ratings := versionServer(t, "reviews"), versionServer(t, "ratings")
	dir := t.TempDir()
	writeFile(t, dir, "services.yaml", fmt.Sprintf(onDemandServices, reviews, ratings))
	xdsAddr := freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", freeAddr(t),
		"--ratelimit-addr", freeAddr(t), "--debounce-after", "10ms")
	waitLine(t, mastd, "mastd serving", 60*time.Second)
	ip := uniqueLoopback()
	admin := ip + ":15000"
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", admin, "--drain-period", "1s", "--labels", "app=client",
		"--meta", "INTERCEPTION_MODE=NONE", "--xds-delta", "--on-demand-routes")
	eventually(t, 30*time.Second, "the proxy ready", func() error {
		resp, err := http.Get("http://" + admin + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("ready: %d", resp.StatusCode)
		}
		return nil
	})
	stat := func(name string) string {
		resp, err := http.Get("http://" + admin + "/stats")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, name+": "); ok {
				return v
			}
		}
		return "missing"
	}
	// get fetches url through the proxy with curl and returns status and body.
	get := func(url string) (string, string) {
		out, err := exec.Command(curl, "-sS", "--max-time", "15", "-x", "http://"+ip+":15001",
			"-o", "-", "-w", "\n%{http_code}", url).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v: %s", url, err, out)
		}
		body, code, _ := strings.Cut(string(out), "\n")
		return code, body
	}

	// The route configuration came without virtual hosts: nothing was asked yet.
	if v := stat("http.on_demand_vhds"); v != "0" {
		t.Fatalf("http.on_demand_vhds %s before any request, want 0", v)
	}
	// First call to each service: a miss, served on demand.
	for i, c := range []struct{ url, want string }{
		{"http://reviews.default.svc.cluster.local:9080/r", "reviews"},
		{"http://ratings.default.svc.cluster.local:9080/r", "ratings"},
	} {
		if code, body := get(c.url); code != "200" || body != c.want {
			t.Fatalf("first request to %s: %s %q, want 200 %q", c.url, code, body, c.want)
		}
		if v := stat("http.on_demand_vhds"); v != fmt.Sprint(i+1) {
			t.Fatalf("after the first request to %s: http.on_demand_vhds %s, want %d", c.url, v, i+1)
		}
	}
	// Second call: the virtual host is held; no new question to mastd.
	if code, body := get("http://reviews.default.svc.cluster.local:9080/again"); code != "200" || body != "reviews" {
		t.Fatalf("second request to reviews: %s %q", code, body)
	}
	if v := stat("http.on_demand_vhds"); v != "2" {
		t.Fatalf("after a second request to reviews: http.on_demand_vhds %s, want 2", v)
	}
	// A host mastd does not know: answered (absent), so no route.
	if code, _ := get("http://nothing.default.svc.cluster.local:9080/"); code != "404" {
		t.Fatalf("unknown host: %s, want 404", code)
	}
	if v := stat("http.on_demand_vhds_failed"); v != "0" {
		t.Fatalf("http.on_demand_vhds_failed %s: an answer did not come", v)
	}
	// A routing change reaches the virtual host the proxy asked for earlier.
	writeFile(t, dir, "routing.yaml", onDemandRouting)
	eventually(t, 30*time.Second, "reviews routed to ratings", func() error {
		if code, body := get("http://reviews.default.svc.cluster.local:9080/r"); code != "200" || body != "ratings" {
			return fmt.Errorf("%s %q", code, body)
		}
		return nil
	})
}
