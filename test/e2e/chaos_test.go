package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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
// sent and failed (a request lost in the proxy times out after 10 s and
// counts as failed).
// After SIGCONT the proxy follows a routing change.
func TestProxyServesWithControlPlaneBlackholed(t *testing.T) {
	outage := 15 * time.Second
	if long() {
		outage = 2 * time.Minute
	}
	cm := chaosMesh(t)
	dir, mastd, get := cm.dir, cm.mastd, cm.get
	want := func(version string) func() error {
		return func() error {
			got, err := get()
			if err == nil && got != version {
				err = fmt.Errorf("answered by %q, want %q", got, version)
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
	stop := make(chan struct{})
	time.AfterFunc(outage, func() { close(stop) })
	sent, failed, first := load(stop, want("v1"))
	t.Logf("%v with mastd blackholed: %d requests sent, %d failed or lost", outage, sent, failed)
	if failed > 0 || sent == 0 {
		t.Fatalf("%d of %d failed or lost; first: %v", failed, sent, first)
	}
	if err := mastd.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	writeFile(t, dir, "routing.yaml", fmt.Sprintf(resilienceRouting, "v2"))
	eventually(t, 60*time.Second, "the new route to v2 once mastd runs again", want("v2"))
	eventually(t, 30*time.Second, "the proxy connected to mastd", func() error {
		if v := cm.stat("control_plane.connected_state"); v != "1" {
			return fmt.Errorf("connected_state %s", v)
		}
		return nil
	})
}

// chaos is mastd and one sidecar (INTERCEPTION_MODE NONE) in front of two
// backends, v1 and v2, routed to v1; get sends one request through the
// sidecar and returns the answering version.
type chaos struct {
	dir          string // mastd's config directory
	mastd, proxy *process
	admin, mon   string // the sidecar's admin and mastd's monitoring address
	get          func() (string, error)
}

// stat reads one of the sidecar's /stats counters ("missing" if absent).
func (c *chaos) stat(name string) string {
	resp, err := http.Get("http://" + c.admin + "/stats")
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

// memory reads the sidecar's and mastd's memory.
func (c *chaos) memory(t *testing.T) (proxy, mastd memSample) {
	t.Helper()
	proxy, err := proxyMemory(c.proxy, c.admin)
	if err != nil {
		t.Fatal(err)
	}
	mastd, err = mastdMemory(c.mastd, c.mon)
	if err != nil {
		t.Fatal(err)
	}
	return proxy, mastd
}

func chaosMesh(t *testing.T, mastdArgs ...string) *chaos {
	t.Helper()
	v1, v2 := versionServer(t, "v1"), versionServer(t, "v2")
	dir := t.TempDir()
	writeFile(t, dir, "backend.yaml", fmt.Sprintf(resilienceService, v1, v2))
	writeFile(t, dir, "routing.yaml", fmt.Sprintf(resilienceRouting, "v1"))
	xdsAddr, mon := freeAddr(t), freeAddr(t)
	mastd := start(t, "mastd", append([]string{"--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", mon, "--ratelimit-addr", freeAddr(t), "--debounce-after", "10ms"}, mastdArgs...)...)
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	ip := uniqueLoopback()
	id := fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip)
	proxy := start(t, "mast-proxy", "--node-id", id, "--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")
	proxyURL, _ := url.Parse("http://" + ip + ":15001")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 8}}
	get := func() (string, error) {
		resp, err := client.Get("http://backend.default.svc.cluster.local:8000/hello")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d body %q", resp.StatusCode, b)
		}
		return string(b), err
	}
	return &chaos{dir: dir, mastd: mastd, proxy: proxy, admin: ip + ":15000", mon: mon, get: get}
}

// load runs 4 clients, 5 ms apart, until stop is closed, and returns the
// requests sent and failed (an error, a wrong answer, or no answer within
// the client's 10 s timeout: lost) and the first failure. check sends one.
func load(stop <-chan struct{}, check func() error) (sent, failed int64, first error) {
	var s, f atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.Add(1)
				if err := check(); err != nil {
					f.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		first = *p
	}
	return s.Load(), f.Load(), first
}

// TestProxyServesThroughConfigPushes: the routing is rewritten 50 times at
// 5 per second (1,000 with MAST_LONG_TESTS=1), alternating v1 and v2, under
// bounded load; every request must be answered by v1 or v2 (none failed or
// lost), the proxy ends on the last route, and neither the sidecar's nor
// mastd's heap or goroutines grow from the first tenth of the pushes to the
// last (readings every tenth are logged).
func TestProxyServesThroughConfigPushes(t *testing.T) {
	pushes := 50
	if long() {
		pushes = 1000
	}
	cm := chaosMesh(t)
	dir, get := cm.dir, cm.get
	eventually(t, 30*time.Second, "routing through the sidecar", func() error { _, err := get(); return err })
	stop := make(chan struct{})
	type result struct {
		sent, failed int64
		first        error
	}
	done := make(chan result)
	go func() {
		var r result
		r.sent, r.failed, r.first = load(stop, func() error {
			v, err := get()
			if err == nil && v != "v1" && v != "v2" {
				err = fmt.Errorf("answered by %q", v)
			}
			return err
		})
		done <- r
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	last := "v1"
	var proxyMem, mastdMem []memSample
	for i := range pushes {
		<-tick.C
		last = []string{"v1", "v2"}[i%2]
		writeFile(t, dir, "routing.yaml", fmt.Sprintf(resilienceRouting, last))
		if (i+1)%(pushes/10) == 0 {
			p, m := cm.memory(t)
			proxyMem, mastdMem = append(proxyMem, p), append(mastdMem, m)
			t.Logf("after %d pushes: sidecar %v; mastd %v", i+1, p, m)
		}
	}
	tick.Stop()
	close(stop)
	r := <-done
	t.Logf("%d config pushes at 5/s: %d requests sent, %d failed or lost", pushes, r.sent, r.failed)
	if r.failed > 0 || r.sent == 0 {
		t.Fatalf("%d of %d failed or lost; first: %v", r.failed, r.sent, r.first)
	}
	eventually(t, 30*time.Second, "the last route, to "+last, func() error {
		v, err := get()
		if err == nil && v != last {
			err = fmt.Errorf("answered by %q, want %q", v, last)
		}
		return err
	})
	if g := grew(proxyMem[0], proxyMem[len(proxyMem)-1]); g != "" {
		t.Errorf("the sidecar grew over %d pushes: %s", pushes, g)
	}
	if g := grew(mastdMem[0], mastdMem[len(mastdMem)-1]); g != "" {
		t.Errorf("mastd grew over %d pushes: %s", pushes, g)
	}
}
