package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/testnet"
)

var proxyBin string

// buildFlags are passed to go build: the release build's gRPC tag (see
// `make build`), and -race when the tests run with -race, so the proxy
// process is race-checked too.
var buildFlags = []string{"-tags", "grpcnotrace"}

// extraEnv is added to the proxy's environment (experiments).
var extraEnv = strings.Fields(os.Getenv("MAST_PROXY_TEST_ENV"))

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mast-proxy-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	proxyBin = filepath.Join(dir, "mast-proxy")
	out, err := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", proxyBin, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build mast-proxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running mast-proxy.
type proc struct {
	cmd    *exec.Cmd
	admin  string
	mu     sync.Mutex
	logs   strings.Builder
	done   chan error
	exited chan struct{}
}

var adminRE = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)

func startProxy(t *testing.T, xdsAddr, nodeID string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--xds-addr", xdsAddr, "--node-id", nodeID, "--admin-addr", "127.0.0.1:0",
		"--meta", "INTERCEPTION_MODE=NONE", "--drain-period", "2s", "--log-level", "debug"}, extra...)
	cmd := exec.Command(proxyBin, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), exited: make(chan struct{})}
	adminCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if m := adminRE.FindStringSubmatch(line); m != nil {
				adminCh <- m[1]
			}
		}
		p.done <- cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		if strings.Contains(p.Logs(), "DATA RACE") {
			t.Error("the proxy process reported a data race")
		}
		if t.Failed() {
			t.Logf("proxy logs:\n%s", p.Logs())
		}
	})
	select {
	case p.admin = <-adminCh:
	case err := <-p.done:
		t.Fatalf("proxy exited early: %v\n%s", err, p.Logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("proxy did not start:\n%s", p.Logs())
	}
	return p
}

func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// adminGet fetches an admin path.
func (p *proc) adminGet(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + path)
	if err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or the test deadline approaches.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("never happened: %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	eventually(t, "proxy ready", func() bool {
		resp, err := http.Get("http://" + p.admin + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	eventually(t, "listener "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	return testnet.FreeAddr(t)
}

// backend is an httptest-like server that records what reached it.
type backend struct {
	srv  *http.Server
	addr string
	hits atomic.Int64
	mu   sync.Mutex
	reqs []*http.Request
}

func startBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String()}
	if h == nil {
		h = echo(name)
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.mu.Lock()
		b.reqs = append(b.reqs, r)
		b.mu.Unlock()
		h(w, r)
	})}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *backend) last() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.reqs) == 0 {
		return nil
	}
	return b.reqs[len(b.reqs)-1]
}

// echo answers with the backend name, the path and host it saw.
func echo(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("x-backend", name)
		fmt.Fprintf(w, "%s %s %s %s", name, r.Method, r.Host, r.URL.RequestURI())
	}
}
