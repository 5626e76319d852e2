package proxymem

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/mast-mesh/mast/bench/controlplane"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// The proxy is built once, as `make build` builds it (releaseFlags, static);
// MAST_PROXYMEM_BUILD=plain builds it with a bare `go build` instead, for
// comparison. MAST_PROXYMEM_ENV adds space-separated KEY=VALUE pairs to the
// proxy's environment (GOGC=50 ...); MAST_PROXYMEM_ARGS adds proxy flags.
var (
	releaseFlags = []string{"-tags", "grpcnotrace", "-trimpath", "-ldflags=-s -w"}
	proxyBin     string
	proxyArgs    = strings.Fields(os.Getenv("MAST_PROXYMEM_ARGS"))
	proxyEnv     = strings.Fields(os.Getenv("MAST_PROXYMEM_ENV"))
	adminRE      = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)
	meshSizeRE   = regexp.MustCompile(`^mesh(\d+)$`)
)

// longEnv turns on the tests that build and run the proxy; benchmarks always
// do. They stay out of `make test` (a release build of mast-proxy and real
// traffic, minutes on a loaded machine): MAST_LONG_TESTS=1 go test ./bench/proxymem
const longEnv = "MAST_LONG_TESTS"

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(longEnv) == "" && flag.Lookup("test.bench").Value.String() == "" {
		os.Exit(m.Run()) // proxyBin stays empty: the proxy tests skip
	}
	dir, err := os.MkdirTemp("", "proxymem")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	proxyBin = filepath.Join(dir, "mast-proxy")
	args := append([]string{"build"}, releaseFlags...)
	env := append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("MAST_PROXYMEM_BUILD") == "plain" {
		args, env = []string{"build"}, os.Environ()
	}
	cmd := exec.Command("go", append(args, "-o", proxyBin, "github.com/mast-mesh/mast/cmd/mast-proxy")...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build mast-proxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name, in string
		want     Mem
		wantErr  bool
	}{
		{name: "linux", in: "Name:\tmast-proxy\nVmHWM:\t   24316 kB\nVmRSS:\t   24316 kB\nRssAnon:\t    3348 kB\nRssFile:\t   20968 kB\nRssShmem:\t0 kB\n",
			want: Mem{VmRSS: 24316, RssAnon: 3348, RssFile: 20968, VmHWM: 24316}},
		{name: "no RssFile", in: "VmRSS:\t1 kB\nRssAnon:\t1 kB\n", wantErr: true},
		{name: "bad number", in: "VmRSS:\tlots kB\nRssAnon:\t1 kB\nRssFile:\t1 kB\n", wantErr: true},
		{name: "other unit", in: "VmRSS:\t1 MB\nRssAnon:\t1 kB\nRssFile:\t1 kB\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseStatus = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestScenariosServeTraffic checks that what the benchmarks measure is a
// working sidecar: the proxy ACKs every generated resource and routes
// through its forward-proxy and inbound listeners to every backend.
func TestScenariosServeTraffic(t *testing.T) {
	if proxyBin == "" {
		t.Skipf("builds and runs mast-proxy (benchmark-sized); set %s=1 to run", longEnv)
	}
	for _, build := range []func() (Scenario, error){Bookinfo, func() (Scenario, error) { return Mesh(20) }} {
		s, err := build()
		if err != nil {
			t.Fatal(err)
		}
		t.Run(s.Name, func(t *testing.T) {
			r := start(t, s)
			if r.mem().VmRSS <= 0 {
				t.Fatal("no VmRSS")
			}
			c := r.client()
			for _, u := range r.s.Targets {
				if body := c.get(t, u, ""); !strings.HasPrefix(body, "backend ") {
					t.Errorf("GET %s: body %q", u, body)
				}
			}
			if body := c.get(t, "", s.InboundHost); body != "backend "+s.Backends[len(s.Backends)-1]+" /inbound" {
				t.Errorf("inbound: body %q", body)
			}
		})
	}
}

// BenchmarkProxyMemory reports the proxy's memory idle (configuration
// loaded, no traffic yet) and loaded (after b.N requests from 8 keep-alive
// clients, through the forward proxy to the targets and to the inbound
// listener, connections still open):
//
//	go test ./bench/proxymem -run '^$' -bench ProxyMemory -benchtime 20000x
func BenchmarkProxyMemory(b *testing.B) {
	for _, name := range []string{"bookinfo", "mesh1000"} {
		b.Run(name, func(b *testing.B) {
			var s Scenario
			var err error
			if m := meshSizeRE.FindStringSubmatch(name); m != nil {
				var n int
				fmt.Sscan(m[1], &n)
				s, err = Mesh(n)
			} else {
				s, err = Bookinfo()
			}
			if err != nil {
				b.Fatal(err)
			}
			r := start(b, s)
			time.Sleep(3 * time.Second) // let the runtime settle after applying the configuration (the proxy releases memory 1s after the last update)
			idle := r.mem()
			live, heap, goroutines := r.heap(b)
			// Of the file-backed pages, the executable's: resident at idle,
			// and those the idle proxy touches again within 2 s.
			pid := r.cmd.Process.Pid
			binRSS, _, err := binaryPages(pid, proxyBin)
			if err != nil {
				b.Fatal(err)
			}
			var binTouched int64 = -1
			if clearRefs(pid) == nil {
				time.Sleep(2 * time.Second)
				_, binTouched, _ = binaryPages(pid, proxyBin)
			}
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := r.client()
				i := 0
				for pb.Next() {
					u, host := "", s.InboundHost
					if k := i % (len(s.Targets) + 1); k < len(s.Targets) {
						u, host = s.Targets[k], ""
					}
					c.get(b, u, host)
					i++
				}
			})
			b.StopTimer()
			loaded := r.mem()
			for _, m := range []struct {
				unit string
				kib  int64
			}{{"idle-rss-MB", idle.VmRSS}, {"idle-anon-MB", idle.RssAnon}, {"idle-file-MB", idle.RssFile},
				{"rss-MB", loaded.VmRSS}, {"anon-MB", loaded.RssAnon}, {"file-MB", loaded.RssFile}, {"hwm-MB", loaded.VmHWM}} {
				b.ReportMetric(MB(m.kib), m.unit)
			}
			b.ReportMetric(MB(binRSS), "idle-bin-MB")
			if binTouched >= 0 {
				b.ReportMetric(MB(binTouched), "idle-bin-touched-MB")
			}
			b.ReportMetric(float64(live)/1e6, "idle-live-MB")
			b.ReportMetric(float64(heap)/1e6, "idle-heap-MB")
			b.ReportMetric(float64(goroutines), "idle-goroutines")
			b.Logf("%s: %v resources; idle %+v KiB, loaded %+v KiB", s.Name, s.Count(), idle, loaded)
		})
	}
}

// run is a running proxy with its control plane and backends.
type run struct {
	s     Scenario
	cmd   *exec.Cmd
	admin string // the admin listener's address
	srv   *xdstest.Server
}

func start(tb testing.TB, s Scenario) *run {
	tb.Helper()
	for _, a := range s.Backends {
		backend(tb, a)
	}
	srv := xdstest.Start(tb, "127.0.0.1:0", nil)
	srv.Set(tb, s.NodeID, "1", s.Resources)
	args := append([]string{"--xds-addr", srv.Addr, "--admin-addr", "127.0.0.1:0", "--drain-period", "100ms"}, s.Args...)
	args = append(args, proxyArgs...)
	cmd := exec.Command(proxyBin, args...)
	cmd.Env = append(os.Environ(), proxyEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var logs strings.Builder
	admin := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := adminRE.FindStringSubmatch(sc.Text()); m != nil {
				admin <- m[1]
			}
		}
		cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if tb.Failed() {
			mu.Lock()
			tb.Logf("proxy logs:\n%s", logs.String())
			mu.Unlock()
		}
	})
	var adminAddr string
	select {
	case adminAddr = <-admin:
	case <-exited:
		tb.Fatal("proxy exited early")
	case <-time.After(20 * time.Second):
		tb.Fatal("proxy did not start")
	}
	// Ready: every type ACKed at version 1; a NACK fails the run.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, t := range controlplane.XDSTypes {
		got := srv.WaitRequest(ctx, func(r *discoveryv3.DiscoveryRequest) bool {
			return r.GetTypeUrl() == t && (r.GetErrorDetail() != nil || r.GetVersionInfo() == "1")
		})
		if got == nil {
			tb.Fatalf("%s: no ACK", controlplane.ShortType(t))
		}
		if got.GetErrorDetail() != nil {
			tb.Fatalf("%s: NACK: %s", controlplane.ShortType(t), got.GetErrorDetail().GetMessage())
		}
	}
	for _, a := range []string{s.Outbound, s.Inbound} {
		for {
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
				break
			}
			if ctx.Err() != nil {
				tb.Fatalf("listener %s never came up", a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return &run{s: s, cmd: cmd, admin: adminAddr, srv: srv}
}

// heap reads the proxy's admin /memory: the Go heap's live bytes and spans
// in use, and the goroutines.
func (r *run) heap(tb testing.TB) (live, inuse, goroutines uint64) {
	resp, err := http.Get("http://" + r.admin + "/memory")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Allocated  uint64 `json:"allocated"`
		HeapInuse  uint64 `json:"heap_inuse"`
		Goroutines uint64 `json:"goroutines"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		tb.Fatalf("admin /memory: %v", err)
	}
	return m.Allocated, m.HeapInuse, m.Goroutines
}

func (r *run) mem() Mem {
	m, err := ReadMem(r.cmd.Process.Pid)
	if err != nil {
		panic(err)
	}
	return m
}

// client sends requests through the forward proxy (absolute-form) or to the
// inbound listener, on keep-alive connections of its own.
type client struct {
	fwd, in *http.Client
	inbound string
}

func (r *run) client() *client {
	pu := &url.URL{Scheme: "http", Host: r.s.Outbound}
	return &client{
		fwd:     &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: 4}},
		in:      &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
		inbound: r.s.Inbound,
	}
}

// get fetches target through the forward proxy, or, when target is "",
// /inbound from the inbound listener with Host host. It fails tb unless the
// answer is 200.
func (c *client) get(tb testing.TB, target, host string) string {
	hc := c.fwd
	if target == "" {
		hc, target = c.in, "http://"+c.inbound+"/inbound"
	}
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		tb.Fatalf("GET %s (host %q): %d %s", target, host, resp.StatusCode, b)
	}
	return string(b)
}

// backend serves "backend ADDR PATH" on addr.
func backend(tb testing.TB, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatalf("backend: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend %s %s", addr, r.URL.Path)
	})}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
}
