package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// compatDir is Istio's Bookinfo networking corpus beside the project checkout.
func compatDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../../shared/compat/istio/bookinfo/networking")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("Istio's compatibility corpus is not here (%v); it lives at ../shared/compat/istio beside the checkout", err)
	}
	return dir
}

// mesh is a running `mast up`.
type mesh struct {
	t        *testing.T
	up       *process
	stateDir string
	gateway  string
	monitor  string
}

func startMesh(t *testing.T, args ...string) *mesh {
	t.Helper()
	m := &mesh{t: t, stateDir: t.TempDir(), monitor: "127.0.0.1:15014"}
	m.gateway = "http://127.0.0.1:8080"
	// Run mast from a directory of its own, as `go run ./cmd/mast up` does:
	// without sibling binaries it runs every program as a child of itself.
	m.up = startBinary(t, copyBinary(t, "mast"), append([]string{"up", "--state-dir", m.stateDir}, args...)...)
	waitLine(t, m.up, "Press Ctrl-C to stop", 2*time.Minute)
	return m
}

// mast runs the CLI against the running mesh.
func (m *mesh) mast(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(binDir, "mast"), append(args, "--state-dir", m.stateDir)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// apply applies files and waits until every proxy acknowledged the resulting push.
func (m *mesh) apply(files ...string) {
	m.t.Helper()
	before := m.pushVersion()
	args := []string{"apply"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	out, err := m.mast(args...)
	if err != nil {
		m.t.Fatalf("mast %v: %v\n%s", args, err, out)
	}
	if strings.Contains(out, "configured") || strings.Contains(out, "created") {
		m.waitConverged(before)
	}
}

var instanceRE = regexp.MustCompile(`reviews-v[123]`)

// page fetches the product page as user ("" for nobody) and returns its body.
func (m *mesh) page(client *http.Client) string {
	m.t.Helper()
	resp, err := client.Get(m.gateway + "/productpage")
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		m.t.Fatalf("GET /productpage: %s\n%s", resp.Status, b)
	}
	return string(b)
}

func (m *mesh) versions(client *http.Client, n int) map[string]int {
	m.t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		got[instanceRE.FindString(m.page(client))]++
	}
	return got
}

func (m *mesh) login(user string) *http.Client {
	m.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.PostForm(m.gateway+"/login", url.Values{"username": {user}, "passwd": {"x"}})
	if err != nil {
		m.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !strings.Contains(m.page(c), "Signed in as "+user) {
		m.t.Fatalf("login as %s did not take", user)
	}
	return c
}

// within checks that each version's share of n pages is the weight asked for.
// The weighted pick is random, so the bound is five binomial standard
// deviations (never under 0.02): a correct split fails about once in two
// million runs, while a misweighting of 0.08 or more at 50/50 (0.07 at 80/20,
// 0.05 at 90/10) still fails. A fixed ±0.05 failed a correct 50/50 split
// (552 of 1,000) at 3.3 deviations.
func within(t *testing.T, got map[string]int, n int, want map[string]float64) {
	t.Helper()
	for v, frac := range want {
		f := float64(got[v]) / float64(n)
		tol := max(0.02, 5*math.Sqrt(frac*(1-frac)/float64(n)))
		if math.Abs(f-frac) > tol {
			t.Fatalf("over %d pages: got %v; %s fraction %.3f, want %.2f ± %.3f", n, got, v, f, frac, tol)
		}
	}
}

// localMeshProxyConfig: ProxyConfigs at two of Istio's precedence levels
// (the root namespace, then a workload selector), started with the mesh.
const localMeshProxyConfig = `apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: mesh, namespace: istio-system}
spec:
  concurrency: 3
  environmentVariables: {ISTIO_META_MAST_PROXYCONFIG: mesh}
---
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  concurrency: 1
  environmentVariables: {ISTIO_META_MAST_PROXYCONFIG: reviews}
`

// TestLocalMeshBookinfo brings up `mast up` and applies each of Istio's Bookinfo
// routing files, checking the behaviour Istio's documentation describes.
func TestLocalMeshBookinfo(t *testing.T) {
	dir := compatDir(t)
	f := func(name string) string { return filepath.Join(dir, name) }
	// The mesh starts from Bookinfo's configuration plus ProxyConfigs
	// (--keep-config keeps the file and adds Bookinfo's beside it).
	m := &mesh{t: t, stateDir: t.TempDir(), monitor: "127.0.0.1:15014", gateway: "http://127.0.0.1:8080"}
	if err := os.MkdirAll(filepath.Join(m.stateDir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(m.stateDir, "config"), "proxyconfig.yaml", localMeshProxyConfig)
	m.up = startBinary(t, copyBinary(t, "mast"), "up", "--state-dir", m.stateDir, "--keep-config")
	waitLine(t, m.up, "Press Ctrl-C to stop", 2*time.Minute)
	anon := &http.Client{Timeout: 30 * time.Second}

	t.Run("ProxyConfig: concurrency as GOMAXPROCS, environmentVariables in the proxy's environment", func(t *testing.T) {
		st, err := localmesh.ReadRunState(m.stateDir)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]struct {
			concurrency int
			meta        string
		}{
			"istio-ingressgateway":   {3, "mesh"},    // root namespace
			"productpage-v1-sidecar": {3, "mesh"},    // root namespace
			"reviews-v2-sidecar":     {1, "reviews"}, // workload selector over the root namespace
		}
		seen := 0
		for _, p := range st.Procs {
			w, ok := want[p.Name]
			if !ok {
				continue
			}
			seen++
			resp, err := anon.Get("http://" + p.Admin + "/server_info")
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			var info struct {
				Options struct {
					Concurrency int `json:"concurrency"`
				} `json:"command_line_options"`
				Node struct {
					Metadata map[string]any `json:"metadata"`
				} `json:"node"`
			}
			err = json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s /server_info: %v", p.Name, err)
			}
			if info.Options.Concurrency != w.concurrency || info.Node.Metadata["MAST_PROXYCONFIG"] != w.meta {
				t.Errorf("%s /server_info: concurrency %d, node metadata MAST_PROXYCONFIG %v; want %d and %q",
					p.Name, info.Options.Concurrency, info.Node.Metadata["MAST_PROXYCONFIG"], w.concurrency, w.meta)
			}
		}
		if seen != len(want) {
			t.Errorf("found %d of the %d proxies in the run state", seen, len(want))
		}
	})

	t.Run("without routing rules every version serves", func(t *testing.T) {
		got := m.versions(anon, 60)
		if got["reviews-v1"] == 0 || got["reviews-v2"] == 0 || got["reviews-v3"] == 0 {
			t.Fatalf("got %v, want all three versions", got)
		}
	})
	t.Run("a second mast up says one is running", func(t *testing.T) {
		out, err := m.mast("up")
		if err == nil || !strings.Contains(out, "already running") {
			t.Fatalf("second mast up: err %v, output:\n%s", err, out)
		}
	})
	t.Run("virtual-service-all-v1", func(t *testing.T) {
		m.apply(f("virtual-service-all-v1.yaml"))
		if got := m.versions(anon, 50); got["reviews-v1"] != 50 {
			t.Fatalf("got %v, want all 50 on reviews-v1", got)
		}
		if p := m.page(anon); strings.Contains(p, "glyphicon-star") {
			t.Fatalf("reviews v1 page shows stars")
		}
	})
	for _, c := range []struct {
		file string
		want map[string]float64
	}{
		{"virtual-service-reviews-80-20.yaml", map[string]float64{"reviews-v1": 0.8, "reviews-v2": 0.2}},
		{"virtual-service-reviews-90-10.yaml", map[string]float64{"reviews-v1": 0.9, "reviews-v2": 0.1}},
		{"virtual-service-reviews-50-v3.yaml", map[string]float64{"reviews-v1": 0.5, "reviews-v3": 0.5}},
		{"virtual-service-reviews-v2-v3.yaml", map[string]float64{"reviews-v2": 0.5, "reviews-v3": 0.5}},
		{"virtual-service-reviews-v3.yaml", map[string]float64{"reviews-v3": 1}},
	} {
		t.Run(strings.TrimSuffix(c.file, ".yaml"), func(t *testing.T) {
			m.apply(f(c.file))
			const n = 1000
			within(t, m.versions(anon, n), n, c.want)
		})
	}
	t.Run("virtual-service-reviews-test-v2: jason to v2", func(t *testing.T) {
		m.apply(f("virtual-service-all-v1.yaml"), f("virtual-service-reviews-test-v2.yaml"))
		jason := m.login("jason")
		if got := m.versions(jason, 30); got["reviews-v2"] != 30 {
			t.Fatalf("jason: got %v, want all on reviews-v2", got)
		}
		if got := m.versions(anon, 30); got["reviews-v1"] != 30 {
			t.Fatalf("anonymous: got %v, want all on reviews-v1", got)
		}
	})
	t.Run("virtual-service-reviews-jason-v2-v3", func(t *testing.T) {
		m.apply(f("virtual-service-reviews-jason-v2-v3.yaml"))
		jason := m.login("jason")
		if got := m.versions(jason, 30); got["reviews-v2"] != 30 {
			t.Fatalf("jason: got %v, want all on reviews-v2", got)
		}
		if got := m.versions(anon, 30); got["reviews-v3"] != 30 {
			t.Fatalf("anonymous: got %v, want all on reviews-v3", got)
		}
	})
	t.Run("virtual-service-ratings-test-delay: reviews unavailable for jason", func(t *testing.T) {
		m.apply(f("virtual-service-reviews-test-v2.yaml"), f("virtual-service-ratings-test-delay.yaml"))
		if p := m.page(m.login("jason")); !strings.Contains(p, "Sorry, product reviews are currently unavailable for this book.") {
			t.Fatalf("jason's page with a 7 s ratings delay does not say reviews are unavailable:\n%s", p)
		}
		if p := m.page(anon); !strings.Contains(p, "reviews-v1") {
			t.Fatalf("anonymous page lost its reviews")
		}
	})
	t.Run("virtual-service-ratings-test-abort: ratings unavailable for jason", func(t *testing.T) {
		m.apply(f("virtual-service-ratings-test-abort.yaml"))
		if p := m.page(m.login("jason")); !strings.Contains(p, "Ratings service is currently unavailable") {
			t.Fatalf("jason's page with ratings aborted does not say ratings are unavailable")
		}
	})
	t.Run("fault-injection-details-v1: details unavailable", func(t *testing.T) {
		m.apply(f("fault-injection-details-v1.yaml"))
		if p := m.page(anon); !strings.Contains(p, "Sorry, product details are currently unavailable for this book.") {
			t.Fatalf("page with details aborted does not say details are unavailable")
		}
	})
	t.Run("mast delete restores the default", func(t *testing.T) {
		before := m.pushVersion()
		if out, err := m.mast("delete", "-f", f("fault-injection-details-v1.yaml")); err != nil {
			t.Fatalf("mast delete: %v\n%s", err, out)
		}
		m.waitConverged(before)
		if p := m.page(anon); strings.Contains(p, "details are currently unavailable") {
			t.Fatalf("details still failing after mast delete")
		}
	})
	t.Run("an invalid file is refused with the validator's message", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(bad, []byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 30\n    - destination: {host: reviews, subset: v2}\n      weight: 30\n"), 0o644)
		out, err := m.mast("apply", "-f", bad)
		if err == nil || !strings.Contains(out, "bad.yaml") || !strings.Contains(out, "VirtualService/default/reviews") {
			t.Fatalf("mast apply of an invalid file: err %v, output:\n%s", err, out)
		}
	})
	t.Run("Ctrl-C stops every process", func(t *testing.T) {
		st := m.runState()
		m.up.cmd.Process.Signal(os.Interrupt)
		select {
		case <-m.up.done:
		case <-time.After(30 * time.Second):
			t.Fatal("mast up did not exit after SIGINT")
		}
		for _, p := range st {
			if err := syscall.Kill(p, 0); err == nil {
				t.Errorf("process %d still running after mast up stopped", p)
			}
		}
	})
}

// pushVersion is the newest version mastd has sent to any proxy.
func (m *mesh) pushVersion() string {
	m.t.Helper()
	status, err := localmesh.Syncz(context.Background(), "http://"+m.monitor)
	if err != nil {
		m.t.Fatal(err)
	}
	newest := ""
	for _, p := range status {
		for _, ty := range p.Types {
			if ty.VersionSent > newest {
				newest = ty.VersionSent
			}
		}
	}
	return newest
}

// waitConverged waits until mastd pushed a version newer than before and every
// proxy acknowledged all it was sent.
func (m *mesh) waitConverged(before string) {
	m.t.Helper()
	eventually(m.t, 30*time.Second, "every proxy to acknowledge the change", func() error {
		status, err := localmesh.Syncz(context.Background(), "http://"+m.monitor)
		if err != nil {
			return err
		}
		newer := false
		for _, p := range status {
			if !localmesh.Synced(p) {
				return fmt.Errorf("proxy %s not synced: %+v", p.ID, p.Types)
			}
			for _, ty := range p.Types {
				newer = newer || ty.VersionSent > before
			}
		}
		if !newer {
			return fmt.Errorf("no push newer than %q yet", before)
		}
		return nil
	})
}

// runState returns the PIDs of every process `mast up` started.
func (m *mesh) runState() []int {
	m.t.Helper()
	st, err := localmesh.ReadRunState(m.stateDir)
	if err != nil {
		m.t.Fatal(err)
	}
	var pids []int
	for _, p := range st.Procs {
		pids = append(pids, p.PID)
	}
	return pids
}
