package e2e

import (
	"fmt"
	"io"
	"net/http"
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

// TestReadmeTour is a newcomer's first hour: it clones the repository into
// an empty directory (nothing beside it), runs the README's commands as
// written from the clone's root -- `go run ./cmd/mast` is a binary built in
// the clone once, so the test stays within minutes -- and checks what the
// README says each does. Then it kills the process that started `mast up`
// (as `kill` on `go run`'s PID does) and checks that nothing is left running.
func TestReadmeTour(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git (apt-get install git)")
	}
	root, err := exec.Command("git", "-C", "../..", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	work := t.TempDir()
	clone := filepath.Join(work, "mast")
	if out, err := exec.Command("git", "clone", "--quiet", strings.TrimSpace(string(root)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	bin := filepath.Join(work, "bin", "mast")
	build := exec.Command("go", "build", "-o", bin, "./cmd/mast")
	build.Dir = clone
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in the clone: %v\n%s", err, out)
	}
	readme, err := os.ReadFile(filepath.Join(clone, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var tour []string
	for _, line := range strings.Split(string(readme), "\n") {
		if cmd, ok := strings.CutPrefix(line, "    go run ./cmd/mast "); ok {
			cmd, _, _ = strings.Cut(cmd, "#")
			tour = append(tour, strings.TrimSpace(cmd))
		}
	}
	if len(tour) < 4 || tour[0] != "up" {
		t.Fatalf("README's commands: %q, want `up` first and the tour after it", tour)
	}
	t.Setenv("MAST_STATE_DIR", filepath.Join(work, "state"))

	// `mast up` under a parent shell, the way `go run` is its parent.
	parent := startBinary(t, "/bin/sh", "-c", "cd "+clone+" && exec 2>&1 && "+bin+" "+tour[0]+" & wait")
	waitLine(t, parent, "Press Ctrl-C to stop", 3*time.Minute)
	// Progress: what starts, then (when a poll catches the proxies part way,
	// which a fast start may not) how many have acknowledged, then ready.
	if out := parent.Output(); !strings.Contains(out, "Starting mastd and") || !strings.Contains(out, "ready after") {
		t.Errorf("mast up printed no progress:\n%s", out)
	}
	st, err := localmesh.ReadRunState(filepath.Join(work, "state"))
	if err != nil {
		t.Fatal(err)
	}

	checks := map[string]func() error{
		"virtual-service-all-v1.yaml": func() error { return reviewsServed(st.GatewayURL, 20, "reviews-v1") },
		"virtual-service-reviews-50-v3.yaml": func() error {
			return reviewsServed(st.GatewayURL, 40, "reviews-v1", "reviews-v3")
		},
		"reset": func() error { return reviewsServed(st.GatewayURL, 60, "reviews-v1", "reviews-v2", "reviews-v3") },
	}
	for _, c := range tour[1:] {
		t.Run(c, func(t *testing.T) {
			cmd := exec.Command(bin, strings.Fields(c)...)
			cmd.Dir = clone
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("mast %s: %v\n%s", c, err, out)
			}
			for key, check := range checks {
				if strings.HasSuffix(c, key) {
					eventually(t, 30*time.Second, "after mast "+c, check)
				}
			}
		})
	}

	t.Run("a rejected edit is reported in mast up's terminal", func(t *testing.T) {
		writeFile(t, st.ConfigDir, "broken.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}, weight: 50}, {destination: {host: b}, weight: 10}]}]}\n")
		waitLine(t, parent, "broken.yaml is rejected", 30*time.Second)
		os.Remove(filepath.Join(st.ConfigDir, "broken.yaml"))
		waitLine(t, parent, "broken.yaml loads again", 30*time.Second)
	})

	t.Run("mast up stops when its parent goes away", func(t *testing.T) {
		pids := []int{st.PID}
		for _, p := range st.Procs {
			pids = append(pids, p.PID)
		}
		if err := parent.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "every process of the mesh gone", func() error {
			for _, pid := range pids {
				if syscall.Kill(pid, 0) == nil && !zombie(pid) {
					return fmt.Errorf("pid %d still running", pid)
				}
			}
			return nil
		})
	})
}

// zombie reports whether pid has exited but not been reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z")
}

var reviewsInstanceRE = regexp.MustCompile(`reviews-v[123]`)

// reviewsServed fetches the product page n times and checks that exactly the
// given reviews instances served it.
func reviewsServed(url string, n int, want ...string) error {
	got := map[string]int{}
	c := &http.Client{Timeout: 10 * time.Second}
	for range n {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		got[reviewsInstanceRE.FindString(string(b))]++
	}
	for _, w := range want {
		if got[w] == 0 {
			return fmt.Errorf("over %d pages: %v, want only %v", n, got, want)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("over %d pages: %v, want only %v", n, got, want)
	}
	return nil
}
