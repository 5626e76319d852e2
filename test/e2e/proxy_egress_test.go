package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// egressConfig: reviews and ratings (HTTP, port 9080) and db (TCP, port
// 5432) as services, and a Sidecar giving the client workload a local port
// for reviews and one for db on its own address (the Istio API: egress
// listeners with a port and a bind; without capture they bind).
const egressConfig = `apiVersion: networking.istio.io/v1
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
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: default}
spec: {address: 127.0.0.1, ports: {tcp: %d}, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    bind: %[4]s
    captureMode: NONE
    hosts: ["./reviews.default.svc.cluster.local"]
  - port: {number: 5432, protocol: TCP, name: tcp}
    bind: %[4]s
    hosts: ["./db.default.svc.cluster.local"]
`

// tcpEcho serves a line-echo protocol: each line comes back prefixed "echo: ".
func tcpEcho(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo: %s\n", sc.Text())
				}
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// startControlPlane runs mastd on config directory dir.
func startControlPlane(t *testing.T, dir string) string {
	t.Helper()
	xdsAddr := freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", freeAddr(t), "--debounce-after", "10ms")
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	return xdsAddr
}

// TestProxyEgressLocalPorts is the explicit mode for machines without root:
// a workload without capture (INTERCEPTION_MODE NONE) gets local ports from
// its Sidecar's egress listeners, and an unmodified client — net/http with
// no proxy, a plain TCP dial — reaches an HTTP service and a TCP service
// through them. The HTTP port is scoped to its own host: whatever Host the
// client sends, it reaches reviews, never ratings (which the workload
// cannot see at all).
func TestProxyEgressLocalPorts(t *testing.T) {
	reviews, ratings, db := versionServer(t, "reviews"), versionServer(t, "ratings"), tcpEcho(t)
	ip := uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(egressConfig, reviews, ratings, db, ip))
	xdsAddr := startControlPlane(t, dir)
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")

	// No HTTP_PROXY: the transport dials the local port itself.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	get := func(url, host string) (string, error) {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			return "", err
		}
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
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
	base := "http://" + ip + ":9080"
	eventually(t, 30*time.Second, "reaching reviews through "+base, func() error {
		got, err := get(base+"/reviews/1", "")
		if err == nil && got != "reviews" {
			err = fmt.Errorf("answered by %q", got)
		}
		return err
	})
	for _, host := range []string{"", "reviews:9080", "ratings.default.svc.cluster.local:9080", "anything.example"} {
		t.Run("http host "+host, func(t *testing.T) {
			got, err := get(base+"/", host)
			if err != nil || got != "reviews" {
				t.Errorf("Host %q: got %q, %v; want reviews", host, got, err)
			}
		})
	}

	t.Run("tcp", func(t *testing.T) {
		var c net.Conn
		eventually(t, 30*time.Second, "dialing the db port", func() error {
			var err error
			c, err = net.DialTimeout("tcp", ip+":5432", 5*time.Second)
			return err
		})
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		for _, line := range []string{"hello", "second line"} {
			fmt.Fprintln(c, line)
			got, err := r.ReadString('\n')
			if err != nil || strings.TrimSpace(got) != "echo: "+line {
				t.Fatalf("db answered %q, %v", got, err)
			}
		}
	})

	t.Run("no other local ports", func(t *testing.T) {
		// ratings has no egress listener of its own: nothing listens for it.
		if c, err := net.DialTimeout("tcp", ip+":9081", time.Second); err == nil {
			c.Close()
			t.Error("something listens on " + ip + ":9081")
		}
	})
}
