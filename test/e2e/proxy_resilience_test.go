package e2e

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// longTests selects the long variants of tests (minutes instead of seconds).
var longTests = flag.Bool("long", false, "run the long variants of the end-to-end tests (also MAST_LONG_TESTS=1)")

func long() bool { return *longTests || os.Getenv("MAST_LONG_TESTS") == "1" }

const resilienceService = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8000, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: backend}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: backend-v1, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: %d}
  labels: {app: backend, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: backend-v2, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: %d}
  labels: {app: backend, version: v2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend, namespace: default}
spec:
  host: backend.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

const resilienceRouting = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: backend.default.svc.cluster.local, subset: %s}
`

// versionServer answers every request with its version.
func versionServer(t *testing.T, version string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, version)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// uniqueLoopback returns a 127.x.y.z address for one workload (Linux routes
// all of 127/8 to lo), so its contract-fixed ports (15000, 15001) do not
// collide with other tests.
func uniqueLoopback() string {
	return fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(256), 2+rand.IntN(250))
}

// TestProxyServesWithControlPlaneKilled is the issue's "a proxy that keeps
// serving for minutes with mastd killed": real mastd, a real mast-proxy
// sidecar (INTERCEPTION_MODE NONE, the client reaches it as HTTP_PROXY) and
// real backends. mastd is killed with SIGKILL; requests keep flowing for
// 15 seconds by default and for 2 minutes with -long or MAST_LONG_TESTS=1
// (CI stays fast), and every one must succeed. Then mastd is started again on
// the same address: the proxy reconnects and applies a routing change made
// after the restart.
func TestProxyServesWithControlPlaneKilled(t *testing.T) {
	outage := 15 * time.Second
	if long() {
		outage = 2 * time.Minute
	}
	v1, v2 := versionServer(t, "v1"), versionServer(t, "v2")
	dir := t.TempDir()
	writeFile(t, dir, "backend.yaml", fmt.Sprintf(resilienceService, v1, v2))
	writeFile(t, dir, "routing.yaml", fmt.Sprintf(resilienceRouting, "v1"))
	xdsAddr := freeAddr(t)
	mastdArgs := []string{"--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", freeAddr(t), "--ratelimit-addr", freeAddr(t), "--debounce-after", "10ms"}
	mastd := start(t, "mastd", mastdArgs...)
	waitLine(t, mastd, "mastd serving", 30*time.Second)

	ip := uniqueLoopback()
	admin := ip + ":15000"
	id := fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip)
	start(t, "mast-proxy", "--node-id", id, "--xds-addr", xdsAddr, "--admin-addr", admin, "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")
	proxyURL, _ := url.Parse("http://" + ip + ":15001")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 8}}
	fetch := func() (string, error) {
		resp, err := client.Get("http://backend.default.svc.cluster.local:8000/hello")
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
	want := func(version string) func() error {
		return func() error {
			got, err := fetch()
			if err == nil && got != version {
				err = fmt.Errorf("answered by %q, want %q", got, version)
			}
			return err
		}
	}
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
	eventually(t, 30*time.Second, "routing through the sidecar to v1", want("v1"))

	if err := mastd.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-mastd.done
	eventually(t, 30*time.Second, "the proxy noticing the control plane is gone", func() error {
		if v := stat("control_plane.connected_state"); v != "0" {
			return fmt.Errorf("connected_state %s", v)
		}
		return nil
	})

	// Four clients for the whole outage; every request must succeed.
	deadline := time.Now().Add(outage)
	var (
		mu       sync.Mutex
		ok, fail int
		firstErr error
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				err := want("v1")()
				mu.Lock()
				if err != nil {
					fail++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					ok++
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	t.Logf("%v without mastd: %d requests succeeded, %d failed", outage, ok, fail)
	if fail > 0 || ok == 0 {
		t.Fatalf("%d of %d requests failed without the control plane; first: %v", fail, ok+fail, firstErr)
	}

	// mastd comes back on the same address; the proxy reconnects (its
	// back-off is bounded) and follows a routing change made afterwards.
	mastd = start(t, "mastd", mastdArgs...)
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	eventually(t, 60*time.Second, "the proxy reconnecting", func() error {
		if v := stat("control_plane.connected_state"); v != "1" {
			return fmt.Errorf("connected_state %s", v)
		}
		return nil
	})
	writeFile(t, dir, "routing.yaml", fmt.Sprintf(resilienceRouting, "v2"))
	eventually(t, 30*time.Second, "the new route to v2 after the restart", want("v2"))
}
