package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// localityConfig: two hosts with the same three endpoints, one per
// locality (%[1]d in r1/z1, %[2]d in r1/z2, %[3]d in r2/z1). failover
// has outlier detection (Istio's locality failover needs it); distribute
// sends the r1/z1 clients' traffic to r2.
const localityConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[4]s, namespace: default}
spec:
  hosts: [%[4]s.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: %[1]d}, locality: r1/z1}
  - {address: 127.0.0.1, ports: {http: %[2]d}, locality: r1/z2}
  - {address: 127.0.0.1, ports: {http: %[3]d}, locality: r2/z1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %[4]s, namespace: default}
spec:
  host: %[4]s.example.test
  trafficPolicy: %[5]s
---
`

// TestLocalityLoadBalancing: a sidecar in r1/z1 (topology labels) sends
// everything to the endpoint in its own locality; when outlier detection
// ejects it, traffic fails over to the same region's other zone (Envoy's
// priorities, never to the other region while that zone is healthy);
// localityLbSetting.distribute sends it where the rule says. Real mastd
// and mast-proxy from Istio YAML.
func TestLocalityLoadBalancing(t *testing.T) {
	var localFails atomic.Bool
	backend := func(name string) int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if name == "local" && localFails.Load() {
				w.WriteHeader(503)
			}
			io.WriteString(w, name)
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		return l.Addr().(*net.TCPAddr).Port
	}
	local, zone, far := backend("local"), backend("zone"), backend("far")
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, localityConfig, local, zone, far, "failover",
		"{outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 10m, maxEjectionPercent: 100}}")
	fmt.Fprintf(&cfg, localityConfig, local, zone, far, "distribute",
		`{loadBalancer: {localityLbSetting: {distribute: [{from: "r1/z1/*", to: {"r2/*": 100}}]}}}`)
	writeFile(t, dir, "locality.yaml", cfg.String())
	xdsAddr := startControlPlane(t, dir)
	ip := uniqueLoopback()
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client,topology.kubernetes.io/region=r1,topology.kubernetes.io/zone=z1", "--meta", "INTERCEPTION_MODE=NONE")
	u, _ := url.Parse("http://" + ip + ":15001")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
	get := func(host string) (string, error) {
		resp, err := c.Get("http://" + host + ".example.test/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b), err
	}
	// count sends n requests and counts the answers.
	count := func(host string, n int) map[string]int {
		got := map[string]int{}
		for i := 0; i < n; i++ {
			s, err := get(host)
			if err != nil {
				s = err.Error()
			}
			got[s]++
		}
		return got
	}
	eventually(t, 30*time.Second, "failover answers", func() error {
		_, err := get("failover")
		return err
	})
	eventually(t, 30*time.Second, "distribute answers from r2", func() error {
		if s, err := get("distribute"); err != nil || s != "200 far" {
			return fmt.Errorf("%q %v", s, err)
		}
		return nil
	})

	t.Run("same locality first", func(t *testing.T) {
		if got := count("failover", 30); got["200 local"] != 30 {
			t.Errorf("answers %v, want all 30 from the proxy's locality", got)
		}
	})
	t.Run("distribute", func(t *testing.T) {
		if got := count("distribute", 30); got["200 far"] != 30 {
			t.Errorf("answers %v, want all 30 from r2 (distribute to r2/* 100)", got)
		}
	})
	t.Run("failover on ejection", func(t *testing.T) {
		localFails.Store(true)
		// The first 503 ejects the local endpoint (consecutive5xxErrors 1).
		eventually(t, 30*time.Second, "traffic leaves the ejected locality", func() error {
			if s, _ := get("failover"); s != "200 zone" {
				return fmt.Errorf("answer %q", s)
			}
			return nil
		})
		if got := count("failover", 30); got["200 zone"] != 30 {
			t.Errorf("answers %v, want all 30 from r1/z2 (priority 1; r2 is priority 2)", got)
		}
	})
}
