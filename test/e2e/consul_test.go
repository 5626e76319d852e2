package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// consulBinary is the Consul agent scripts/build-consul.sh builds, or skips.
func consulBinary(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("MAST_CONSUL")}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "mast", "consul-v1.22.7"))
	}
	for _, c := range candidates {
		if c != "" {
			if _, err := os.Stat(c); err == nil {
				return c
			}
		}
	}
	t.Skip("no Consul binary: run scripts/build-consul.sh (builds ~/.cache/mast/consul-v1.22.7; .ci/run does)")
	return ""
}

// TestConsulPlatformBookinfo runs `mast up --platform consul`: Bookinfo's
// workloads are registered in a real Consul dev agent instead of being
// WorkloadEntries, mastd follows Consul (--registry consul), and Istio's
// routing files route them as on the default platform. Registrations,
// deregistrations and health checks made through Consul's own CLI and HTTP
// API move traffic; Consul frozen for 30 s loses no request.
func TestConsulPlatformBookinfo(t *testing.T) {
	consul := consulBinary(t)
	dir := compatDir(t)
	f := func(name string) string { return filepath.Join(dir, name) }
	m := startMesh(t, "--platform", "consul", "--consul-bin", consul)
	const consulAddr = "127.0.0.1:8500"
	client, err := api.NewClient(&api.Config{Address: consulAddr})
	if err != nil {
		t.Fatal(err)
	}
	anon := &http.Client{Timeout: 30 * time.Second}
	consulCLI := func(args ...string) {
		t.Helper()
		cmd := exec.Command(consul, args...)
		cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR="+consulAddr)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("consul %v: %v\n%s", args, err, out)
		}
	}
	follows := func(what string, ok func(map[string]int) bool) { t.Helper(); m.follows(anon, 30*time.Second, what, ok) }

	t.Run("Bookinfo's instances come from Consul", func(t *testing.T) {
		services, _, err := client.Catalog().Services(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"productpage", "details", "reviews", "ratings"} {
			if _, ok := services[s]; !ok {
				t.Errorf("%s not registered in Consul: %v", s, services)
			}
		}
		out, err := m.mast("proxy-config", "endpoint", "productpage-v1")
		if err != nil || !strings.Contains(out, "reviews.service.consul") {
			t.Errorf("productpage's sidecar has no endpoints of reviews.service.consul: %v\n%s", err, out)
		}
		got := m.versions(anon, 60)
		if got["reviews-v1"] == 0 || got["reviews-v2"] == 0 || got["reviews-v3"] == 0 {
			t.Fatalf("got %v, want all three versions", got)
		}
	})
	t.Run("virtual-service-all-v1", func(t *testing.T) {
		m.apply(f("virtual-service-all-v1.yaml"))
		if got := m.versions(anon, 40); got["reviews-v1"] != 40 {
			t.Fatalf("got %v, want all 40 on reviews-v1", got)
		}
	})
	t.Run("virtual-service-reviews-80-20 by Consul tag subsets", func(t *testing.T) {
		m.apply(f("virtual-service-reviews-80-20.yaml"))
		const n = 500
		within(t, m.versions(anon, n), n, map[string]float64{"reviews-v1": 0.8, "reviews-v2": 0.2})
	})
	t.Run("a failing health check removes the instance and passing brings it back", func(t *testing.T) {
		// Every version of reviews behind one route (no subsets): a weighted
		// route to a subset left without endpoints answers 503, as Envoy's
		// does; here the failed instance simply leaves the pool.
		all := filepath.Join(t.TempDir(), "reviews-all.yaml")
		if err := os.WriteFile(all, []byte(reviewsAnyVersion), 0o644); err != nil {
			t.Fatal(err)
		}
		m.apply(all)
		check := &api.AgentCheckRegistration{ID: "reviews-v2-ttl", Name: "test", ServiceID: "reviews-v2",
			AgentServiceCheck: api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}}
		if err := client.Agent().CheckRegister(check); err != nil {
			t.Fatal(err)
		}
		if err := client.Agent().UpdateTTL("reviews-v2-ttl", "failing on purpose", api.HealthCritical); err != nil {
			t.Fatal(err)
		}
		follows("reviews-v2 critical", func(got map[string]int) bool {
			return got["reviews-v2"] == 0 && got["reviews-v1"]+got["reviews-v3"] == 20
		})
		if err := client.Agent().UpdateTTL("reviews-v2-ttl", "", api.HealthPassing); err != nil {
			t.Fatal(err)
		}
		follows("reviews-v2 passing again", func(got map[string]int) bool { return got["reviews-v2"] > 0 })
	})
	t.Run("deregistered with consul's CLI then registered again", func(t *testing.T) {
		consulCLI("services", "deregister", "-id=reviews-v3")
		follows("reviews-v3 deregistered", func(got map[string]int) bool {
			return got["reviews-v3"] == 0 && got["reviews-v1"]+got["reviews-v2"] == 20
		})
		def := filepath.Join(t.TempDir(), "reviews-v3.json")
		b, _ := json.Marshal(map[string]any{"service": map[string]any{"id": "reviews-v3", "name": "reviews", "address": "127.0.1.5", "port": 9080,
			"tags": []string{"app|reviews", "version|v3"}, "meta": map[string]string{"protocol": "HTTP", "service-account": "bookinfo-reviews", "mesh-namespace": "default"}}})
		os.WriteFile(def, b, 0o644)
		consulCLI("services", "register", def)
		follows("reviews-v3 registered again", func(got map[string]int) bool { return got["reviews-v3"] > 0 })
	})
	t.Run("Consul frozen for 30 s loses no request", func(t *testing.T) {
		m.freezeLosesNoRequest(t, anon, "consul", 30*time.Second, nil)
		if z := m.registryz(t); len(z) != 2 || z[1].Name != "consul" || !z[1].Synced {
			t.Errorf("/debug/registryz: %+v", z)
		}
	})
}

// follows waits until 20 pages in a row satisfy ok and logs how long the
// mesh took to follow its registry (the 20 pages included).
func (m *mesh) follows(client *http.Client, d time.Duration, what string, ok func(map[string]int) bool) {
	m.t.Helper()
	start := time.Now()
	eventually(m.t, d, what, func() error {
		if got := m.versions(client, 20); !ok(got) {
			return fmt.Errorf("pages: %v", got)
		}
		return nil
	})
	m.t.Logf("%s: followed after %v (20 pages included)", what, time.Since(start).Round(time.Millisecond))
}

// procPID is the pid of the mesh's process name, from run.json.
func (m *mesh) procPID(t *testing.T, name string) int {
	t.Helper()
	st, err := localmesh.ReadRunState(m.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Procs {
		if p.Name == name {
			return p.PID
		}
	}
	t.Fatalf("no %s process in %+v", name, st.Procs)
	return 0
}

// freezeLosesNoRequest stops the mesh's process name with SIGSTOP for at
// least d (and until during, if any, returns) while a client keeps asking
// for the product page, and fails if any request failed. A frozen registry
// is its hardest outage: connections are accepted and never answered.
func (m *mesh) freezeLosesNoRequest(t *testing.T, client *http.Client, name string, d time.Duration, during func()) {
	t.Helper()
	pid := m.procPID(t, name)
	var sent, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get(m.gateway + "/productpage")
			sent.Add(1)
			if err != nil {
				failed.Add(1)
				continue
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
			}
		}
	}()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			syscall.Kill(pid, syscall.SIGCONT)
			close(stop)
			wg.Wait()
		}
	}
	defer resume() // also when during fails the test
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(d)
	if during != nil {
		during()
	}
	time.Sleep(time.Until(until))
	resume()
	if sent.Load() == 0 || failed.Load() != 0 {
		t.Fatalf("while %s was stopped: %d of %d requests failed", name, failed.Load(), sent.Load())
	}
	t.Logf("%d requests while %s was stopped, none failed", sent.Load(), name)
}

// registryStatus is one registry in mastd's /debug/registryz.
type registryStatus struct {
	Name      string `json:"name"`
	Synced    bool   `json:"synced"`
	Stale     bool   `json:"stale"`
	LastError string `json:"lastError"`
	Services  int    `json:"services"`
	Endpoints int    `json:"endpoints"`
}

// registryz reads mastd's /debug/registryz.
func (m *mesh) registryz(t *testing.T) []registryStatus {
	t.Helper()
	var z struct {
		Registries []registryStatus `json:"registries"`
	}
	resp, err := http.Get("http://" + m.monitor + "/debug/registryz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&z); err != nil {
		t.Fatal(err)
	}
	return z.Registries
}

// reviewsAnyVersion routes reviews to all of its instances, whatever their
// version, replacing the VirtualService of the earlier steps.
const reviewsAnyVersion = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
`
