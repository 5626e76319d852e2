package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/quota/quotatest"
)

// Mixer tests on separate processes: real mastd (its CA and its Mixer on a
// free port, over mTLS) and real mast-proxy sidecars with mesh identities,
// on loopback addresses of their own (no mast up, no fixed ports).

// meshCA creates a CA directory that every mastd of a test shares, and
// returns it with a bootstrap token file for each workload of service
// account sas[i] (a token serves one workload's key).
func meshCA(t *testing.T, sas ...string) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	c, err := ca.New(ca.Config{Dir: dir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for i, sa := range sas {
		id, _ := c.WorkloadID("default", sa)
		tok, err := c.IssueToken(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), fmt.Sprintf("%s-%d.jwt", sa, i))
		if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, p)
	}
	return dir, tokens
}

// mixerMastd runs mastd with its Mixer; it returns the secure xDS (and
// CA) address and the monitoring address (/metrics with the Mixer's
// prometheus adapter series).
func mixerMastd(t *testing.T, dir, caDir string) (secure, monitoring string) {
	t.Helper()
	secure, monitoring = freeAddr(t), freeAddr(t)
	m := start(t, "mastd", "--config", dir, "--xds-addr", freeAddr(t), "--monitoring-addr", monitoring, "--ca-dir", caDir,
		"--secure-xds-addr", secure, "--components", "pilot,galley,mixer", "--mixer-addr", freeAddr(t), "--debounce-after", "10ms")
	waitLine(t, m, "mastd serving", 30*time.Second)
	return secure, monitoring
}

// mixerSidecar runs a sidecar (no capture) of workload wl at ip with a
// mesh identity from caDir's CA through secure.
func mixerSidecar(t *testing.T, secure, caDir, token, ip, wl, sa, labels string) {
	t.Helper()
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~%s.default~default.svc.cluster.local", ip, wl),
		"--xds-addr", secure, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", labels, "--meta", "INTERCEPTION_MODE=NONE", "--meta", "SERVICE_ACCOUNT="+sa, "--meta", "WORKLOAD_NAME="+wl,
		"--ca-addr", secure, "--ca-root-file", filepath.Join(caDir, "root-cert.pem"), "--token-file", token)
}

// mixerTCPConfig: mongodb (TCP 27017) behind a sidecar at %[1]s forwarding
// to the application at 127.0.0.1:%[2]d; Istio 1.4's TCP metrics task
// (byte counters by the prometheus adapter) and a listchecker denylist
// naming client %[3]s for TCP connections.
const mixerTCPConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongodb, namespace: default}
spec:
  hosts: [mongodb.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 27017, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: mongodb}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: mongodb-1, namespace: default}
spec: {address: %[1]s, labels: {app: mongodb, version: v1}, serviceAccount: mongodb}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: mongodb, namespace: default}
spec:
  workloadSelector: {labels: {app: mongodb}}
  ingress:
  - port: {number: 27017, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:%[2]d
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: mongosentbytes, namespace: istio-system}
spec:
  compiledTemplate: metric
  params:
    value: connection.sent.bytes | 0
    dimensions:
      source_ip: source.ip | ip("0.0.0.0")
      destination_version: destination.labels["version"] | "unknown"
    monitoredResourceType: '"UNSPECIFIED"'
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: mongoreceivedbytes, namespace: istio-system}
spec:
  compiledTemplate: metric
  params:
    value: connection.received.bytes | 0
    dimensions:
      source_ip: source.ip | ip("0.0.0.0")
      destination_version: destination.labels["version"] | "unknown"
    monitoredResourceType: '"UNSPECIFIED"'
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: mongohandler, namespace: istio-system}
spec:
  compiledAdapter: prometheus
  params:
    metrics:
    - name: mongo_sent_bytes
      instance_name: mongosentbytes.instance.istio-system
      kind: COUNTER
      label_names: [source_ip, destination_version]
    - name: mongo_received_bytes
      instance_name: mongoreceivedbytes.instance.istio-system
      kind: COUNTER
      label_names: [source_ip, destination_version]
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: mongoprom, namespace: istio-system}
spec:
  match: context.protocol == "tcp" && destination.service.host == "mongodb.default.svc.cluster.local"
  actions:
  - handler: mongohandler
    instances: [mongoreceivedbytes, mongosentbytes]
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: denyclients, namespace: istio-system}
spec:
  compiledAdapter: listchecker
  params:
    overrides: ["%[3]s"]
    blacklist: true
    entryType: IP_ADDRESSES
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: sourceip, namespace: istio-system}
spec:
  compiledTemplate: listentry
  params:
    value: source.ip | ip("0.0.0.0")
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: denyclients, namespace: istio-system}
spec:
  match: context.protocol == "tcp"
  actions:
  - handler: denyclients
    instances: [sourceip]
`

// startPrometheus runs a real Prometheus scraping mastd's /metrics every
// second and returns its address.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("needs Prometheus: apt-get install -y prometheus (.ci/run installs it)")
	}
	dir := t.TempDir()
	writeFile(t, dir, "prometheus.yml", fmt.Sprintf("global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: mastd\n  static_configs: [{targets: [%q]}]\n", target))
	addr := freeAddr(t)
	startBinary(t, bin, "--config.file", filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr)
	return addr
}

// promValue runs an instant query against Prometheus at addr and returns
// the single series' value.
func promValue(addr, query string) (float64, error) {
	var resp struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := getJSON(ctx, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(query), &resp); err != nil {
		return 0, err
	}
	if len(resp.Data.Result) != 1 {
		return 0, fmt.Errorf("%s: %d series", query, len(resp.Data.Result))
	}
	s, _ := resp.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// TestMixerTCP: Istio's Mixer TCP filter through real mastd and a real
// mast-proxy sidecar. A client the Mixer's listchecker denylists has its
// connection closed; an allowed client's connections are reported with
// their byte counts, which the Mixer's prometheus adapter adds up and a
// real Prometheus scrapes from mastd: exactly the bytes the clients sent
// and received.
func TestMixerTCP(t *testing.T) {
	app := tcpEcho(t)
	ip, bad, probe, counted := uniqueLoopback(), uniqueLoopback(), uniqueLoopback(), uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(mixerTCPConfig, ip, app, bad))
	caDir, tokens := meshCA(t, "mongodb")
	secure, monitoring := mixerMastd(t, dir, caDir)
	prom := startPrometheus(t, monitoring)
	mixerSidecar(t, secure, caDir, tokens[0], ip, "mongodb-1", "mongodb", "app=mongodb,version=v1")
	addr := ip + ":27017"
	eventually(t, 30*time.Second, "an allowed client through the sidecar", func() error { return echoFrom(probe, addr) })
	if err := echoFrom(bad, addr); err == nil {
		t.Fatalf("the client the Mixer's denylist names got through")
	}
	// Each connection sends "ping\n" (5 bytes) and receives "echo: ping\n" (11).
	const conns = 3
	for range conns {
		if err := echoFrom(counted, addr); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]float64{"istio_mongo_received_bytes": 5 * conns, "istio_mongo_sent_bytes": 11 * conns} {
		q := fmt.Sprintf(`%s{source_ip=%q,destination_version="v1"}`, name, counted)
		eventually(t, 30*time.Second, q+" in Prometheus", func() error {
			v, err := promValue(prom, q)
			if err != nil {
				return err
			}
			if v != want {
				return fmt.Errorf("%s = %v, want %v", q, v, want)
			}
			return nil
		})
	}
	if v, err := promValue(prom, fmt.Sprintf(`istio_mongo_received_bytes{source_ip=%q}`, bad)); err == nil && v > 0 {
		t.Errorf("the refused client's connection was relayed: %v bytes received", v)
	}
}

// mixerQuotaConfig: productpage (HTTP 9080) with two workloads at %[1]s and
// %[2]s, each behind its own sidecar, the application at 127.0.0.1:%[3]d.
const mixerQuotaConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: productpage}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage-1, namespace: default}
spec: {address: %[1]s, labels: {app: productpage, version: v1}, serviceAccount: bookinfo-productpage}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage-2, namespace: default}
spec: {address: %[2]s, labels: {app: productpage, version: v1}, serviceAccount: bookinfo-productpage}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: productpage, namespace: default}
spec:
  workloadSelector: {labels: {app: productpage}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:%[3]d
`

// curlStatus sends GET url with curl and returns the status and body.
func curlStatus(t *testing.T, u string) (int, string) {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", u).Output()
	if err != nil {
		return 0, err.Error()
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	code, _ := strconv.Atoi(s[i+1:])
	return code, s[:i]
}

// TestMixerRedisQuotaTwoSidecars: Istio 1.4's redisquota fixed- and
// rolling-window files, with only redisServerUrl pointed at the test's
// real redis-server; two mastd (one CA), each running a Mixer, and
// productpage's two workloads behind two sidecars, each checking with its
// own mastd's Mixer. curl alternates between the sidecars: exactly the
// file's amount passes in total, the rest get 429 RESOURCE_EXHAUSTED.
func TestMixerRedisQuotaTwoSidecars(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	redisURL := quotatest.StartRedis(t)
	app := versionServer(t, "productpage")
	ips := []string{uniqueLoopback(), uniqueLoopback()}
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(mixerQuotaConfig, ips[0], ips[1], app))
	quotaFile := func(name string) string {
		b, err := os.ReadFile(mixerFile(name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Replace(string(b), "redis-release-master:6379", strings.TrimPrefix(redisURL, "redis://"), 1)
	}
	writeFile(t, dir, "quota.yaml", quotaFile("mixer-rule-productpage-redis-quota-fixed-window.yaml"))
	caDir, tokens := meshCA(t, "bookinfo-productpage", "bookinfo-productpage")
	for i, ip := range ips {
		secure, _ := mixerMastd(t, dir, caDir)
		mixerSidecar(t, secure, caDir, tokens[i], ip, fmt.Sprintf("productpage-%d", i+1), "bookinfo-productpage",
			"app=productpage,version=v1")
	}
	get := func(i int) (int, string) { return curlStatus(t, "http://"+ips[i%2]+":9080/productpage") }
	// Each sidecar answers through its Mixer: 200, or 429 once the
	// quota is spent.
	for i := range ips {
		eventually(t, 30*time.Second, "sidecar "+ips[i]+" checking quota", func() error {
			code, body := get(i)
			if code == 200 || code == 429 && strings.HasPrefix(body, "RESOURCE_EXHAUSTED:") {
				return nil
			}
			return fmt.Errorf("%d %q", code, body)
		})
	}
	count := func(n int) (ok int) {
		for i := range n {
			switch code, body := get(i); {
			case code == 200:
				ok++
			case code != 429 || !strings.HasPrefix(body, "RESOURCE_EXHAUSTED:"):
				t.Fatalf("request %d: %d %q, want 200 or 429 RESOURCE_EXHAUSTED", i, code, body)
			}
		}
		return ok
	}
	t.Run("fixed window: 1 per 30 s", func(t *testing.T) {
		// Windows are aligned to the epoch: start in a fresh one.
		time.Sleep(30*time.Second - time.Duration(time.Now().UnixNano())%(30*time.Second) + 100*time.Millisecond)
		if got := count(6); got != 1 {
			t.Errorf("%d of 6 requests passed across two sidecars and two Mixers, want exactly 1", got)
		}
	})
	t.Run("rolling window: productpage 2 per second", func(t *testing.T) {
		writeFile(t, dir, "quota.yaml", quotaFile("mixer-rule-productpage-redis-quota-rolling-window.yaml"))
		for i := range ips {
			// Two passing in a row: the fixed window lets one through.
			eventually(t, 30*time.Second, "sidecar "+ips[i]+" under the rolling window", func() error {
				for range 2 {
					if code, body := get(i); code != 200 {
						return fmt.Errorf("%d %q", code, body)
					}
				}
				return nil
			})
		}
		// A one-second window: a run slower than the 500 ms bucket (a
		// starved machine) proves nothing and is tried again. Go's client
		// on kept-alive connections: starting a curl per request takes
		// longer than the window on a loaded machine.
		hc := &http.Client{Timeout: 10 * time.Second}
		fast := func(n int) (ok int) {
			for i := range n {
				resp, err := hc.Get("http://" + ips[i%2] + ":9080/productpage")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					ok++
				case resp.StatusCode != 429 || !strings.HasPrefix(string(body), "RESOURCE_EXHAUSTED:"):
					t.Fatalf("request %d: %d %q, want 200 or 429 RESOURCE_EXHAUSTED", i, resp.StatusCode, body)
				}
			}
			return ok
		}
		fast(2) // open the connections
		for attempt := 0; ; attempt++ {
			time.Sleep(1100 * time.Millisecond) // the previous requests' window is gone
			start := time.Now()
			got := fast(5)
			if took := time.Since(start); took > 400*time.Millisecond && attempt < 6 {
				continue
			}
			if got != 2 {
				t.Errorf("%d of 5 requests passed across two sidecars and two Mixers, want exactly 2", got)
			}
			break
		}
	})
}
