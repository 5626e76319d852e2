package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestProxyServesWithControlPlaneBlackholed: mastd is frozen with SIGSTOP,
// so its sockets stay open and every xDS read and new connection hangs
// instead of failing (a blackholed control plane, which a kill does not
// show). Under bounded load (4 clients, 5 ms apart) for 15 s (2 min with
// MAST_LONG_TESTS=1) every request must succeed; the test reports requests
// sent, failed and lost (neither answered nor failed when the load stopped).
// After SIGCONT the proxy follows a routing change.
func TestProxyServesWithControlPlaneBlackholed(t *testing.T) {
	outage := 15 * time.Second
	if long() {
		outage = 2 * time.Minute
	}
	v1, v2 := versionServer(t, "v1"), versionServer(t, "v2")
	dir := t.TempDir()
	writeFile(t, dir, "backend.yaml", fmt.Sprintf(resilienceService, v1, v2))
	writeFile(t, dir, "routing.yaml", fmt.Sprintf(resilienceRouting, "v1"))
	xdsAddr := freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", freeAddr(t), "--debounce-after", "10ms")
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	ip := uniqueLoopback()
	id := fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip)
	start(t, "mast-proxy", "--node-id", id, "--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")
	proxyURL, _ := url.Parse("http://" + ip + ":15001")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 8}}
	want := func(version string) func() error {
		return func() error {
			resp, err := client.Get("http://backend.default.svc.cluster.local:8000/hello")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil && (resp.StatusCode != 200 || string(b) != version) {
				err = fmt.Errorf("status %d body %q, want %q", resp.StatusCode, b, version)
			}
			return err
		}
	}
	eventually(t, 30*time.Second, "routing through the sidecar to v1", want("v1"))

	if err := mastd.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			mastd.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	var sent, okN, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	deadline := time.Now().Add(outage)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				sent.Add(1)
				if err := want("v1")(); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				} else {
					okN.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	lost := sent.Load() - okN.Load() - failed.Load()
	t.Logf("%v with mastd blackholed: %d requests sent, %d failed, %d lost", outage, sent.Load(), failed.Load(), lost)
	if failed.Load() > 0 || lost != 0 || okN.Load() == 0 {
		var first error
		if p := firstErr.Load(); p != nil {
			first = *p
		}
		t.Fatalf("%d failed and %d lost of %d; first: %v", failed.Load(), lost, sent.Load(), first)
	}
	if err := mastd.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	writeFile(t, dir, "routing.yaml", fmt.Sprintf(resilienceRouting, "v2"))
	eventually(t, 60*time.Second, "the new route to v2 once mastd runs again", want("v2"))
}
