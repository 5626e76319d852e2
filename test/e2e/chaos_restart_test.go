package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// restartMesh: service "server" has two workloads, a and b, each behind a
// sidecar of its own (INTERCEPTION_MODE NONE: the sidecar's inbound listener
// is IP:8080, forwarding to the workload's application, which answers its
// name). A client sidecar routes to both.
const restartMesh = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server, namespace: default}
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: server}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-a, namespace: default}
spec:
  address: %[1]s
  labels: {app: server, version: a}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-b, namespace: default}
spec:
  address: %[2]s
  labels: {app: server, version: b}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: server-a, namespace: default}
spec:
  workloadSelector:
    labels: {app: server, version: a}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %[3]s
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: server-b, namespace: default}
spec:
  workloadSelector:
    labels: {app: server, version: b}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %[4]s
`

// namedApp answers every request with name; /slow answers after 2 s.
func namedApp(t *testing.T, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/slow" {
			time.Sleep(2 * time.Second)
		}
		io.WriteString(w, name)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// TestProxyRestartWithDrain is the issue's "a proxy restarted mid-load with
// drain": under bounded load through the client sidecar (4 clients, 5 ms
// apart, every request must be answered by a or b), server a's sidecar gets
// SIGTERM while 8 slow requests (2 s) are in flight on its inbound listener.
// Those must all complete with a's answer (drain), no request of the load may
// fail or be reset (new ones go to b), and once a's sidecar is started again
// the load reaches a again. It reports requests sent and failed. Three
// restarts (10 with MAST_LONG_TESTS=1).
func TestProxyRestartWithDrain(t *testing.T) {
	restarts := 3
	if long() {
		restarts = 10
	}
	nw := fmt.Sprintf("127.%d.%d", 100+rand.IntN(100), 1+rand.IntN(250))
	ipA, ipB, ipC := nw+".1", nw+".2", nw+".3"
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(restartMesh, ipA, ipB, namedApp(t, "a"), namedApp(t, "b")))
	xdsAddr := freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", freeAddr(t), "--ratelimit-addr", freeAddr(t), "--debounce-after", "10ms")
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	sidecar := func(ip, name, version string) *process {
		return start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~%s.default~default.svc.cluster.local", ip, name),
			"--xds-addr", xdsAddr, "--admin-addr", "127.0.0.1:0", "--drain-period", "5s",
			"--labels", "app="+strings.TrimSuffix(name, "-"+version)+",version="+version, "--meta", "INTERCEPTION_MODE=NONE")
	}
	sidecarA := sidecar(ipA, "server-a", "a")
	sidecar(ipB, "server-b", "b")
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client.default~default.svc.cluster.local", ipC),
		"--xds-addr", xdsAddr, "--admin-addr", "127.0.0.1:0", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")
	proxyURL, _ := url.Parse("http://" + ipC + ":15001")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 8}}

	var mu sync.Mutex
	seen := map[string]int{}
	get := func() error {
		resp, err := client.Get("http://server.default.svc.cluster.local:8080/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && (resp.StatusCode != 200 || (string(b) != "a" && string(b) != "b")) {
			err = fmt.Errorf("status %d body %q", resp.StatusCode, b)
		}
		if err == nil {
			mu.Lock()
			seen[string(b)]++
			mu.Unlock()
		}
		return err
	}
	reaches := func(name string) func() error {
		return func() error {
			mu.Lock()
			seen = map[string]int{}
			mu.Unlock()
			for range 20 {
				if err := get(); err != nil {
					return err
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[name] == 0 {
				return fmt.Errorf("20 requests answered %v, none by %s", seen, name)
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, "the client sidecar reaching server a", reaches("a"))
	eventually(t, 30*time.Second, "the client sidecar reaching server b", reaches("b"))
	direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	eventually(t, 10*time.Second, "server a's inbound listener", func() error {
		resp, err := direct.Get("http://" + ipA + ":8080/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})

	stop := make(chan struct{})
	type result struct {
		sent, failed int64
		first        error
	}
	done := make(chan result)
	go func() {
		var r result
		r.sent, r.failed, r.first = load(stop, get)
		done <- r
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-done
		}
	}()
	for i := range restarts {
		time.Sleep(2 * time.Second)
		// Slow requests in flight on a's inbound listener when it drains.
		var wg sync.WaitGroup
		inflight := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := direct.Get("http://" + ipA + ":8080/slow")
				if err != nil {
					inflight <- err
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err == nil && (resp.StatusCode != 200 || string(b) != "a") {
					err = fmt.Errorf("status %d body %q", resp.StatusCode, b)
				}
				inflight <- err
			}()
		}
		time.Sleep(500 * time.Millisecond)
		if err := sidecarA.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(inflight)
		for err := range inflight {
			if err != nil {
				t.Fatalf("restart %d: a slow request in flight on the draining sidecar: %v", i+1, err)
			}
		}
		select {
		case <-sidecarA.done:
		case <-time.After(15 * time.Second):
			t.Fatalf("restart %d: server a's sidecar did not exit within its 5 s drain", i+1)
		}
		time.Sleep(time.Second) // load on b alone
		sidecarA = sidecar(ipA, "server-a", "a")
		eventually(t, 30*time.Second, fmt.Sprintf("restart %d: the load reaching server a again", i+1), func() error {
			mu.Lock()
			before := seen["a"]
			mu.Unlock()
			time.Sleep(200 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if seen["a"] == before {
				return fmt.Errorf("no answer from a (answers so far %v)", seen)
			}
			return nil
		})
	}
	close(stop)
	r := <-done
	mu.Lock()
	t.Logf("%d restarts of server a's sidecar under load: %d requests sent, %d failed or lost; answers %v", restarts, r.sent, r.failed, seen)
	mu.Unlock()
	if r.failed > 0 || r.sent == 0 {
		t.Fatalf("%d of %d failed or lost; first: %v", r.failed, r.sent, r.first)
	}
}
