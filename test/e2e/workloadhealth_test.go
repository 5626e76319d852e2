package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
)

// workloadHealthConfig: service "vm" is a ServiceEntry selecting two VM
// workloads, each a WorkloadEntry annotated for health checks (Istio's
// proxy.istio.io/health-checks-enabled) whose proxy names it
// (ISTIO_META_WORKLOAD_ENTRY) and runs the WorkloadGroup's readiness probe.
// Each VM's sidecar takes the service port and hands requests to its
// application (a Sidecar's ingress defaultEndpoint). %[1]s, %[2]s the VMs'
// IPs, %[3]s, %[4]s their applications' addresses, %[5]s the HTTP
// application's port.
const workloadHealthConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: default}
spec:
  hosts: [vm.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: vm, namespace: default}
spec:
  metadata: {labels: {app: vm}}
  template: {serviceAccount: vm, ports: {http: 8080}}
  probe:
    periodSeconds: 1
    failureThreshold: 2
    successThreshold: 2
    httpGet: {path: /ready, host: 127.0.0.1, port: %[5]s}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm-http
  namespace: default
  annotations: {proxy.istio.io/health-checks-enabled: "true"}
spec: {address: %[1]s, labels: {app: vm, instance: http}, serviceAccount: vm}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm-tcp
  namespace: default
  annotations: {proxy.istio.io/health-checks-enabled: "true"}
spec: {address: %[2]s, labels: {app: vm, instance: tcp}, serviceAccount: vm}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: vm-http, namespace: default}
spec:
  workloadSelector: {labels: {instance: http}}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %[3]s
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: vm-tcp, namespace: default}
spec:
  workloadSelector: {labels: {instance: tcp}}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %[4]s
`

// TestWorkloadHealthProbe: two VM workloads behind one service, each with a
// mast-proxy whose agent runs its readiness probe (httpGet on one,
// tcpSocket on the other) and reports to mastd over its mTLS ADS stream.
// A client sidecar's traffic reaches a workload only while its probe
// passes: after failureThreshold failed periods mastd withdraws the
// endpoint (/debug/workloadhealthz shows Healthy False with the probe's
// error), and after successThreshold passes it is back.
func TestWorkloadHealthProbe(t *testing.T) {
	base := uniqueLoopback()
	base = base[:strings.LastIndexByte(base, '.')]
	clientIP, httpIP, tcpIP := base+".21", base+".22", base+".23"

	// The applications: each answers with its name; the HTTP one answers
	// /ready with 200 or 503, the TCP one can close its listener.
	var ready atomic.Bool
	ready.Store(true)
	serve := func(addr string, h http.HandlerFunc) *http.Server {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h, Addr: l.Addr().String()}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	httpApp := serve("127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" && !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "vm-http")
	})
	tcpHandler := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "vm-tcp") }
	tcpApp := serve("127.0.0.1:0", tcpHandler)
	httpAddr, tcpAddr := appAddr(httpApp), appAddr(tcpApp)
	_, httpPort, _ := net.SplitHostPort(httpAddr)
	_, tcpPort, _ := net.SplitHostPort(tcpAddr)

	dir, caDir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(workloadHealthConfig, httpIP, tcpIP, httpAddr, tcpAddr, httpPort))
	c, err := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		id, _ := c.WorkloadID("default", sa)
		tok, err := c.IssueToken(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), sa+".jwt")
		if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	xdsAddr, caAddr, monAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", monAddr,
		"--ratelimit-addr", freeAddr(t), "--ca-dir", caDir, "--secure-xds-addr", caAddr, "--debounce-after", "10ms")
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	sidecar := func(name, ip, sa string, extra ...string) {
		args := append([]string{"--node-id", fmt.Sprintf("sidecar~%s~%s.default~default.svc.cluster.local", ip, name),
			"--admin-addr", ip + ":15000", "--meta", "INTERCEPTION_MODE=NONE", "--meta", "SERVICE_ACCOUNT=" + sa,
			"--drain-period", "1s", "--ca-addr", caAddr, "--ca-root-file", filepath.Join(caDir, "root-cert.pem"),
			"--token-file", token(sa), "--xds-addr", caAddr}, extra...)
		start(t, "mast-proxy", args...)
	}
	// The VMs' probes: the WorkloadGroup's spec.probe, as JSON (what
	// `kubectl get workloadgroup vm -o jsonpath={.spec.probe}` prints).
	sidecar("vm-http", httpIP, "vm", "--labels", "app=vm,instance=http", "--meta", "WORKLOAD_ENTRY=vm-http",
		"--readiness-probe", `{"periodSeconds":1,"failureThreshold":2,"successThreshold":2,"httpGet":{"path":"/ready","host":"127.0.0.1","port":`+httpPort+`}}`)
	sidecar("vm-tcp", tcpIP, "vm", "--labels", "app=vm,instance=tcp", "--meta", "WORKLOAD_ENTRY=vm-tcp",
		"--readiness-probe", `{"periodSeconds":1,"failureThreshold":2,"successThreshold":2,"tcpSocket":{"host":"127.0.0.1","port":`+tcpPort+`}}`)
	sidecar("client", clientIP, "client", "--labels", "app=client")

	proxyURL, _ := url.Parse("http://" + clientIP + ":15001")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), DisableKeepAlives: true}}
	// answers returns which workloads answered 20 requests.
	answers := func() map[string]int {
		got := map[string]int{}
		for range 20 {
			resp, err := client.Get("http://vm.default.svc.cluster.local:8080/")
			if err != nil {
				got["error"]++
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				got[fmt.Sprintf("status %d", resp.StatusCode)]++
				continue
			}
			got[string(b)]++
		}
		return got
	}
	want := func(what string, names ...string) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			got := answers()
			if len(got) != len(names) {
				return fmt.Errorf("answers %v, want only %v", got, names)
			}
			for _, n := range names {
				if got[n] == 0 {
					return fmt.Errorf("answers %v, want only %v", got, names)
				}
			}
			return nil
		})
	}
	conditions := func() map[string]map[string]any {
		resp, err := http.Get("http://" + monAddr + "/debug/workloadhealthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var cs []map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]any{}
		for _, c := range cs {
			out[c["name"].(string)] = c
		}
		return out
	}

	want("both workloads take traffic once their probes pass", "vm-http", "vm-tcp")

	ready.Store(false)
	want("the httpGet workload withdrawn after failureThreshold failures", "vm-tcp")
	if c := conditions()["vm-http"]; c["status"] != "False" || !strings.Contains(fmt.Sprint(c["message"]), "503") {
		t.Errorf("vm-http condition %v, want Healthy False naming status 503", c)
	}
	ready.Store(true)
	want("the httpGet workload back after successThreshold passes", "vm-http", "vm-tcp")
	if c := conditions()["vm-http"]; c["status"] != "True" {
		t.Errorf("vm-http condition %v, want Healthy True", c)
	}

	tcpApp.Close() // the port refuses connections: the tcpSocket probe fails
	want("the tcpSocket workload withdrawn", "vm-http")
	serve(tcpAddr, tcpHandler)
	want("the tcpSocket workload back", "vm-http", "vm-tcp")
}

// appAddr is the address a test server listens on.
func appAddr(s *http.Server) string { return s.Addr }
