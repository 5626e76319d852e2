package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
)

// multiNetworkConfig: service "remote" has its only endpoint on network-2
// (WorkloadEntry network); service "both" has that one and a local one on
// network-1 (the topology.istio.io/network label), with Istio's failover to
// other networks (failoverPriority on the network label, outlier detection
// on). Istio's cross-network gateway (samples/multicluster) on network-2.
// %[1]s remote workload IP, %[2]s local workload IP, %[3]s and %[4]s their
// applications' addresses.
const multiNetworkConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: remote, namespace: default}
spec:
  hosts: [remote.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: remote}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: both, namespace: default}
spec:
  hosts: [both.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {tier: backend}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: both, namespace: default}
spec:
  host: both.default.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        failoverPriority: [topology.istio.io/network]
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 1m}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: remote-1, namespace: default}
spec:
  address: %[1]s
  network: network-2
  labels: {app: remote, tier: backend}
  serviceAccount: remote
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: local-1, namespace: default}
spec:
  address: %[2]s
  labels: {app: local, tier: backend, topology.istio.io/network: network-1}
  serviceAccount: local
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: remote, namespace: default}
spec:
  workloadSelector: {labels: {app: remote}}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %[3]s
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: local, namespace: default}
spec:
  workloadSelector: {labels: {app: local}}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %[4]s
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: AUTO_PASSTHROUGH}
    hosts: ["*.local"]
`

// TestMultiNetwork is split-horizon EDS through real mastd and mast-proxy
// processes: a client sidecar on network-1 calls a service whose only
// endpoint is on network-2. mastd (meshNetworks in its mesh config names
// network-2's gateway) gives the client the gateway's address instead of the
// endpoint's; the client speaks mTLS to the gateway with SNI
// outbound_.8080_._.remote.default.svc.cluster.local; the gateway's
// AUTO_PASSTHROUGH server routes it by SNI, without terminating it, to the
// endpoint's sidecar, which sees the client's certificate. A service with an
// endpoint on each network is answered by the local one (failoverPriority on
// the network label), which the client sees at its own address.
func TestMultiNetwork(t *testing.T) {
	app := func(name string) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s|%s", name, r.Header.Get("X-Forwarded-Client-Cert"))
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		return l.Addr().String()
	}
	remoteApp, localApp := app("remote"), app("local")
	base := uniqueLoopback()
	base = base[:strings.LastIndexByte(base, '.')]
	clientIP, remoteIP, localIP, gwIP := base+".11", base+".12", base+".13", base+".14"

	dir, caDir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(multiNetworkConfig, remoteIP, localIP, remoteApp, localApp))
	meshFile := filepath.Join(t.TempDir(), "mesh-config.yaml")
	if err := os.WriteFile(meshFile, []byte(fmt.Sprintf(`meshNetworks:
  networks:
    network-1:
      endpoints: [{fromCidr: %[1]s/32}]
    network-2:
      endpoints: [{fromCidr: %[2]s/32}]
      gateways: [{address: %[3]s, port: 15443}]
`, clientIP, remoteIP, gwIP)), 0o644); err != nil {
		t.Fatal(err)
	}
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
	xdsAddr, caAddr := freeAddr(t), freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--mesh-config", meshFile, "--xds-addr", xdsAddr, "--monitoring-addr", freeAddr(t),
		"--ratelimit-addr", freeAddr(t), "--ca-dir", caDir, "--secure-xds-addr", caAddr, "--debounce-after", "10ms")
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	sidecar := func(name, ip, network string) {
		start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~%s-1.default~default.svc.cluster.local", ip, name),
			"--admin-addr", ip+":15000", "--labels", "app="+name, "--meta", "INTERCEPTION_MODE=NONE", "--meta", "SERVICE_ACCOUNT="+name,
			"--meta", "NETWORK="+network, "--drain-period", "1s", "--ca-addr", caAddr, "--ca-root-file", filepath.Join(caDir, "root-cert.pem"),
			"--token-file", token(name), "--xds-addr", caAddr)
	}
	sidecar("client", clientIP, "network-1")
	sidecar("remote", remoteIP, "network-2")
	sidecar("local", localIP, "network-1")
	// The east-west gateway needs no certificate: it never terminates TLS.
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("router~%s~eastwest-1.istio-system~istio-system.svc.cluster.local", gwIP),
		"--admin-addr", gwIP+":15000", "--labels", "istio=eastwestgateway", "--meta", "INTERCEPTION_MODE=NONE", "--meta", "NETWORK=network-2",
		"--drain-period", "1s", "--xds-addr", xdsAddr, "--xds-tls=false")

	proxyURL, _ := url.Parse("http://" + clientIP + ":15001")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	get := func(host string) (string, error) {
		resp, err := client.Get("http://" + host + ".default.svc.cluster.local:8080/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return string(b), err
	}
	admin := func(ip, path string) string {
		resp, err := http.Get("http://" + ip + ":15000" + path)
		if err != nil {
			t.Fatalf("admin %s%s: %v", ip, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	stat := func(ip, name string) int {
		for _, l := range strings.Split(admin(ip, "/stats"), "\n") {
			if v, ok := strings.CutPrefix(l, name+": "); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n
			}
		}
		return 0
	}
	// hosts lists a cluster's endpoints in the proxy's /clusters.
	hosts := func(ip, cluster string) []string {
		var out []string
		for _, l := range strings.Split(admin(ip, "/clusters"), "\n") {
			if rest, ok := strings.CutPrefix(l, cluster+"::"); ok && strings.Contains(rest, "::weight::") {
				out = append(out, rest[:strings.Index(rest, "::weight::")])
			}
		}
		return out
	}
	const clientID = "spiffe://cluster.local/ns/default/sa/client"
	eventually(t, 60*time.Second, "the remote service answers through the gateway", func() error {
		s, err := get("remote")
		if err != nil {
			return err
		}
		if !strings.HasPrefix(s, "remote|") {
			return fmt.Errorf("answer %q", s)
		}
		return nil
	})

	t.Run("remote endpoint only through the gateway", func(t *testing.T) {
		remoteCluster := "outbound|8080||remote.default.svc.cluster.local"
		if got := hosts(clientIP, remoteCluster); len(got) != 1 || got[0] != gwIP+":15443" {
			t.Fatalf("client's endpoints of %s = %v, want only the network-2 gateway %s:15443 (never the endpoint %s)", remoteCluster, got, gwIP, remoteIP)
		}
		dnat := "outbound_.8080_._.remote.default.svc.cluster.local"
		if got := hosts(gwIP, dnat); len(got) != 1 || got[0] != remoteIP+":8080" {
			t.Fatalf("gateway's endpoints of %s = %v, want the endpoint %s:8080", dnat, got, remoteIP)
		}
		gwBefore := stat(gwIP, "cluster."+dnat+".upstream_cx_total")
		inBefore := stat(remoteIP, "cluster.inbound|8080||.upstream_rq_2xx")
		// The client sidecar pools its mTLS connections to the gateway, so
		// the gateway counts connections, the endpoint requests.
		const n = 20
		for i := 0; i < n; i++ {
			s, err := get("remote")
			if err != nil {
				t.Fatal(err)
			}
			// The endpoint's sidecar terminated the client's own mTLS: the
			// gateway passed it through by SNI.
			if !strings.Contains(s, "URI="+clientID) {
				t.Fatalf("answer %q: the endpoint did not see the client's certificate", s)
			}
		}
		if got := stat(remoteIP, "cluster.inbound|8080||.upstream_rq_2xx") - inBefore; got != n {
			t.Errorf("the endpoint's sidecar served %d requests, want %d", got, n)
		}
		if gwBefore < 1 {
			t.Errorf("gateway %s upstream_cx_total = %d before the loop: the first request did not cross it", dnat, gwBefore)
		}
		if rq := stat(clientIP, "cluster."+remoteCluster+".upstream_rq_2xx"); rq < n {
			t.Errorf("client %s upstream_rq_2xx = %d, want >= %d", remoteCluster, rq, n)
		}
		t.Logf("gateway %s upstream_cx_total %d -> %d", dnat, gwBefore, stat(gwIP, "cluster."+dnat+".upstream_cx_total"))
	})

	t.Run("local endpoint directly, preferred", func(t *testing.T) {
		bothCluster := "outbound|8080||both.default.svc.cluster.local"
		got := strings.Join(hosts(clientIP, bothCluster), " ")
		if !strings.Contains(got, localIP+":8080") || !strings.Contains(got, gwIP+":15443") || strings.Contains(got, remoteIP) {
			t.Fatalf("client's endpoints of %s = %s, want the local endpoint %s:8080 and the gateway %s:15443", bothCluster, got, localIP, gwIP)
		}
		for i := 0; i < 20; i++ {
			s, err := get("both")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(s, "local|") {
				t.Fatalf("answer %q: want the network-1 endpoint (failoverPriority on the network)", s)
			}
		}
	})

}
