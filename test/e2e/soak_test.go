package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakDuration is MAST_SOAK (a Go duration: 1h, 15m); 0 skips the soak.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("MAST_SOAK")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 2*time.Minute {
		t.Fatalf("MAST_SOAK=%q: want a duration of at least 2m (e.g. 1h)", v)
	}
	return d
}

// TestSoak is the soak mode (MAST_SOAK=1h; not in CI): real mastd with its
// CA and two sidecars over mTLS (STRICT, 2-minute certificates, so each
// sidecar renews about every minute), a bounded load through them (4
// clients, 5 ms apart), a configuration push every 10 s that changes the
// upstream cluster (so its connection pools are replaced and drained), and
// readings of RSS, heap and goroutines of mastd and both sidecars every
// 30 s. It asserts that no request failed, that both sidecars renewed their
// certificates all along, and that nothing grew from the first reading
// after warm-up (2 min) to the last (heap at most 1.5x + 8 MiB, goroutines
// at most +25); the readings are logged for the report.
func TestSoak(t *testing.T) {
	d := soakDuration(t)
	if d == 0 {
		t.Skip("the soak runs for MAST_SOAK (e.g. MAST_SOAK=1h)")
	}
	m := startMTLSMesh(t, "", "", "--cert-ttl", "2m")
	m.setPeerAuthentication("STRICT")
	dr := func(n int) string {
		return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server, namespace: default}
spec:
  host: server.default.svc.cluster.local
  trafficPolicy:
    connectionPool: {http: {maxRequestsPerConnection: %d}}
`, 100+n%2)
	}
	writeFile(t, m.configDir, "dr.yaml", dr(0))
	eventually(t, 60*time.Second, "mTLS through the sidecars", func() error {
		if err := m.direct(); err == nil {
			return fmt.Errorf("STRICT not applied yet")
		}
		code, _, err := m.viaSidecar()
		if err != nil || code != 200 {
			return fmt.Errorf("status %d, %v", code, err)
		}
		return nil
	})
	admins := map[string]string{}
	for name, p := range m.proxies {
		a, err := loggedAddr(p, adminLine)
		if err != nil {
			t.Fatal(err)
		}
		admins[name] = a
	}
	names := []string{"mastd", "client", "server"}
	read := func() map[string]memSample {
		out := map[string]memSample{}
		s, err := mastdMemory(m.mastd, m.monAddr)
		if err != nil {
			t.Fatal(err)
		}
		out["mastd"] = s
		for name, a := range admins {
			if out[name], err = proxyMemory(m.proxies[name], a); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}

	var sent, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	stop := make(chan struct{})
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
				sent.Add(1)
				code, _, err := m.viaSidecar()
				if err != nil || code != 200 {
					failed.Add(1)
					msg := fmt.Sprintf("%s: status %d, %v", time.Now().Format(time.TimeOnly), code, err)
					firstErr.CompareAndSwap(nil, &msg)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}()

	begin := time.Now()
	end := begin.Add(d)
	pushes, lastSent := 0, int64(0)
	var baseline, latest map[string]memSample
	push := time.NewTicker(10 * time.Second)
	defer push.Stop()
	sample := time.NewTicker(30 * time.Second)
	defer sample.Stop()
	for time.Now().Before(end) {
		select {
		case <-push.C:
			pushes++
			writeFile(t, m.configDir, "dr.yaml", dr(pushes))
		case <-sample.C:
			latest = read()
			n := sent.Load()
			line := []string{fmt.Sprintf("+%v: %d requests (%.0f/s), %d failed", time.Since(begin).Round(time.Second), n, float64(n-lastSent)/30, failed.Load())}
			lastSent = n
			for _, name := range names {
				line = append(line, name+" "+latest[name].String())
			}
			t.Log(strings.Join(line, "; "))
			if baseline == nil && time.Since(begin) >= 2*time.Minute {
				baseline = latest
			}
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("soak of %v: %d requests sent, %d failed; %d pushes", d, sent.Load(), failed.Load(), pushes)
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed; first: %s", failed.Load(), sent.Load(), *firstErr.Load())
	}
	for name, p := range m.proxies {
		// The first certificate and one renewal a minute (2-minute TTL).
		if n, want := strings.Count(p.Output(), "certificate issued"), int(d/time.Minute)/2; n < want {
			t.Errorf("%s: %d certificates issued in %v, want at least %d", name, n, d, want)
		}
	}
	if baseline == nil {
		t.Fatal("no reading after warm-up")
	}
	for _, name := range names {
		if g := grew(baseline[name], latest[name]); g != "" {
			t.Errorf("%s grew during the soak: %s", name, g)
		}
	}
}
