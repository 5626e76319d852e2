package dataplane

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/proxy/admin"
)

func TestTargetFor(t *testing.T) {
	tests := []struct {
		path  Path
		proto Protocol
		want  Target
	}{
		{Path{Peer: Direct}, HTTP1, Target{Addr: "127.77.2.1:28080"}},
		{Path{Peer: Direct}, HTTP2, Target{Addr: "127.77.2.1:28080"}},
		{Path{Peer: Direct}, GRPCStream, Target{Addr: "127.77.2.1:28078"}},
		{Path{Peer: Mast, Hops: 1}, HTTP1, Target{Addr: "127.77.1.1:15001", Authority: "echo-app.bench.svc.cluster.local:28080", Procs: []string{"mast-1"}}},
		{Path{Peer: Mast, Hops: 2}, GRPC, Target{Addr: "127.77.1.1:15001", Authority: "echo.bench.svc.cluster.local:28079", Procs: []string{"mast-1", "mast-2"}}},
		{Path{Peer: Mast, Hops: 2, TLS: true}, HTTP2, Target{Addr: "127.77.1.1:15001", Authority: "echo-mtls.bench.svc.cluster.local:28081", Procs: []string{"mast-1", "mast-2"}}},
		{Path{Peer: Nginx, Hops: 1}, HTTP1, Target{Addr: "127.77.3.2:28080", Procs: []string{"nginx-2"}}},
		{Path{Peer: HAProxy, Hops: 2}, GRPC, Target{Addr: "127.77.4.1:28079", Procs: []string{"haproxy-1", "haproxy-2"}}},
		{Path{Peer: Caddy, Hops: 2, TLS: true}, HTTP1, Target{Addr: "127.77.5.1:29080", Procs: []string{"caddy-1", "caddy-2"}}},
	}
	for _, tt := range tests {
		got := TargetFor(tt.path, tt.proto)
		if got.Addr != tt.want.Addr || got.Authority != tt.want.Authority || strings.Join(got.Procs, ",") != strings.Join(tt.want.Procs, ",") {
			t.Errorf("TargetFor(%s, %s) = %+v, want %+v", tt.path.Name(), tt.proto, got, tt.want)
		}
	}
}

func TestPathsNames(t *testing.T) {
	var names []string
	for _, p := range Paths([]Peer{Mast, Nginx}, false) {
		names = append(names, p.Name())
	}
	want := "direct,mast 1-hop,mast 2-hop,mast 2-hop mTLS,nginx 1-hop,nginx 2-hop,nginx 2-hop mTLS"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("Paths = %s, want %s", got, want)
	}
}

func TestFortioArgs(t *testing.T) {
	tests := []struct {
		name string
		spec LoadSpec
		want string
	}{
		{"http1 through mast", LoadSpec{Proto: HTTP1, Target: Target{Addr: "127.77.1.1:15001", Authority: "echo:28080"}, QPS: 1000, Conns: 16, Duration: 5 * time.Second, BodySize: 1024, JSONPath: "/o.json"},
			"load -quiet -c 16 -qps 1000 -t 5s -r 0.00001 -p 50,90,99,99.9 -json /o.json -payload-size 1024 -H Host:echo:28080 http://127.77.1.1:15001/echo"},
		{"h2c saturation", LoadSpec{Proto: HTTP2, Target: Target{Addr: "127.77.2.1:28080"}, QPS: 0, Conns: 16, Duration: 2 * time.Second, BodySize: 1024, JSONPath: "/o.json"},
			"load -quiet -c 16 -qps 0 -t 2s -r 0.00001 -p 50,90,99,99.9 -json /o.json -payload-size 1024 -h2 http://127.77.2.1:28080/echo"},
		{"grpc authority", LoadSpec{Proto: GRPC, Target: Target{Addr: "127.77.1.1:15001", Authority: "echo:28079"}, QPS: 1000, Conns: 16, Duration: time.Second, BodySize: 1024, JSONPath: "/o.json"},
			"load -quiet -c 16 -qps 1000 -t 1s -r 0.00001 -p 50,90,99,99.9 -json /o.json -payload-size 1024 -grpc -ping -H host:echo:28079 127.77.1.1:15001"},
	}
	for _, tt := range tests {
		if got := strings.Join(FortioArgs(tt.spec), " "); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestParseFortio(t *testing.T) {
	b, err := os.ReadFile("testdata/fortio-http.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseFortio(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 2992 || r.Errors != 0 || r.Connection != 16 {
		t.Errorf("requests/errors/conns = %d/%d/%d, want 2992/0/16", r.Requests, r.Errors, r.Connection)
	}
	if r.P50 < 2.26 || r.P50 > 2.27 || r.P999 < 64.6 || r.P999 > 64.7 || r.QPS < 998 || r.QPS > 999 {
		t.Errorf("p50 %.4f p99.9 %.4f qps %.1f, want 2.268, 64.648, 998.7", r.P50, r.P999, r.QPS)
	}
	bad := []string{`{`, `{"RetCodes": {"200": 5}, "DurationHistogram": {"Count": 5}}`}
	for _, in := range bad {
		if _, err := ParseFortio([]byte(in)); err == nil {
			t.Errorf("ParseFortio(%q) = nil error", in)
		}
	}
	r, err = ParseFortio([]byte(`{"RetCodes": {"SERVING": 90, "503": 10}, "DurationHistogram": {"Count": 105, "Percentiles": [{"Percentile": 50, "Value": 0.001}]}}`))
	if err != nil || r.Requests != 90 || r.Errors != 15 || r.P50 != 1 {
		t.Errorf("grpc codes: %+v %v, want 90 ok, 15 errors (10 codes + 5 uncounted), p50 1 ms", r, err)
	}
}

func TestParseSchedstat(t *testing.T) {
	s, err := ParseSchedstat([]byte("123456 7890 42\n"))
	if want := (Sched{RunNs: 123456, WaitNs: 7890, Slices: 42}); err != nil || s != want {
		t.Errorf("ParseSchedstat = %+v, %v; want %+v, nil", s, err, want)
	}
	for _, bad := range []string{"", "1 2", "x 2 3", "1 x 3", "1 2 -3"} {
		if _, err := ParseSchedstat([]byte(bad)); err == nil {
			t.Errorf("ParseSchedstat(%q): nil error", bad)
		}
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in        string
		ppid      int
		ticks     uint64
		wantError bool
	}{
		{"1234 (nginx) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 200", 1, 300, false},
		{"99 (a (b) c) R 42 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1", 42, 10, false},
		{"99 no paren", 0, 0, true},
		{"99 (x) R 1 2", 0, 0, true},
		{"99 (x) R z 1 1 0 -1 0 0 0 0 0 7 3 0", 0, 0, true},
	}
	for _, tt := range tests {
		ppid, ticks, err := ParseStat([]byte(tt.in))
		if (err != nil) != tt.wantError || ppid != tt.ppid || ticks != tt.ticks {
			t.Errorf("ParseStat(%q) = %d, %d, %v; want %d, %d, error %v", tt.in, ppid, ticks, err, tt.ppid, tt.ticks, tt.wantError)
		}
	}
	if _, user, sys, err := parseStat([]byte(tests[0].in)); user != 250 || sys != 50 || err != nil {
		t.Errorf("parseStat(%q) = user %d, sys %d, %v; want 250, 50", tests[0].in, user, sys, err)
	}
}

func TestParseRSS(t *testing.T) {
	rss, err := ParseRSS([]byte("Name:\tx\nVmPeak:\t 100 kB\nVmRSS:\t   2048 kB\n"))
	if err != nil || rss != 2048*1024 {
		t.Errorf("ParseRSS = %d, %v; want %d", rss, err, 2048*1024)
	}
	for _, in := range []string{"Name: x\n", "VmRSS: 12 MB\n", "VmRSS: x kB\n"} {
		if _, err := ParseRSS([]byte(in)); err == nil {
			t.Errorf("ParseRSS(%q) = nil error", in)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (nginx) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 200"))
	f.Add([]byte("1 ((() R 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = ParseStat(b)
		_, _ = ParseRSS(b)
	})
}

func TestTreeUsageSeesChildren(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(context.Background(), dir, "sh", "", nil, "sh", "-c", "sleep 30 & sleep 30 & wait")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	var rss uint64
	for i := 0; i < 100; i++ { // wait for the two children to appear
		u, err := TreeUsage(p.Cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		selfOnly, err := readProc(p.Cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if u.RSS > selfOnly.RSSBytes {
			rss = u.RSS
			if u.Slices == 0 || u.RunNs == 0 {
				t.Errorf("TreeUsage: %d bytes but no thread was ever scheduled or ran (schedstat not read): %+v", u.RSS, u)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rss == 0 {
		t.Fatal("TreeUsage never counted the children's memory")
	}
	p.Stop(time.Second)
	if !p.Exited() {
		t.Error("process group still running after Stop")
	}
	if _, err := TreeUsage(p.Cmd.Process.Pid); err == nil {
		t.Error("TreeUsage of an exited process: nil error")
	}
}

func TestStat(t *testing.T) {
	s := stat([]float64{3, 1, 2})
	if s.Median != 2 || s.Min != 1 || s.Max != 3 || s.N != 3 {
		t.Errorf("stat(3,1,2) = %+v", s)
	}
	if s := stat([]float64{1, 4}); s.Median != 2.5 {
		t.Errorf("stat(1,4).Median = %v, want 2.5", s.Median)
	}
	if s := stat(nil); s.N != 0 {
		t.Errorf("stat(nil) = %+v", s)
	}
}

func TestDefaultPinningAndCPUCount(t *testing.T) {
	if p := DefaultPinning(1); p != (Pinning{}) {
		t.Errorf("1 CPU: %+v, want unpinned", p)
	}
	if p := DefaultPinning(2); p != (Pinning{Load: "0", Proxy: "1", Server: "1"}) {
		t.Errorf("2 CPUs: %+v", p)
	}
	if p := DefaultPinning(8); p.Proxy != "2-7" || cpuCount(p.Proxy) != 6 {
		t.Errorf("8 CPUs: %+v (count %d)", p, cpuCount(p.Proxy))
	}
	for in, want := range map[string]int{"": 0, "1": 1, "0,2-3": 3, "x": 0, "3-1": 0} {
		if got := cpuCount(in); got != want {
			t.Errorf("cpuCount(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestMastConfigLoads checks that mastd's own loader accepts the generated
// configuration, with and without the 1,000-service mesh.
func TestMastConfigLoads(t *testing.T) {
	for _, services := range []int{0, 1000} {
		rs, probs := config.Load("bench.yaml", []byte(MastConfig(services)))
		if len(probs) > 0 {
			t.Fatalf("%d services: %v", services, probs)
		}
		snap := config.NewSnapshot(rs)
		if got, want := len(snap.List(config.ServiceEntry)), 3+services; got != want {
			t.Errorf("%d services: %d ServiceEntries, want %d", services, got, want)
		}
		if got := len(snap.List(config.DestinationRule)); got != 2 {
			t.Errorf("%d DestinationRules, want 2 (echo DISABLE, echo-mtls ISTIO_MUTUAL)", got)
		}
	}
}

func TestMeshEndpointsDistinct(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		for j := 0; j < 2; j++ {
			a := MeshEndpoint(i, j)
			if seen[a] || net.ParseIP(a) == nil {
				t.Fatalf("MeshEndpoint(%d,%d) = %s: duplicate or invalid", i, j, a)
			}
			seen[a] = true
		}
	}
}

// TestPeerConfigsValid runs each installed peer's own configuration check
// on the generated files (skipped for peers that are not installed).
func TestPeerConfigsValid(t *testing.T) {
	dir := t.TempDir()
	certs, err := WriteCerts(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	hops := []HopConfig{
		{Hop: 1, IP: "127.77.3.1", Next: "127.77.3.2", Workers: 1},
		{Hop: 2, IP: "127.77.3.2", Next: ServerIP, Workers: 1},
		{Hop: 1, IP: "127.77.3.3", Next: ServerIP, Workers: 1, Services: 50},
		{Hop: 1, IP: "127.77.6.1", Next: "127.77.6.2", Workers: 1, H2Upstream: true},
		{Hop: 2, IP: "127.77.6.2", Next: ServerIP, Workers: 1, H2Upstream: true},
	}
	for i, h := range hops {
		h.Certs = certs
		h.Dir = filepath.Join(dir, "hop", string(rune('a'+i)))
		if err := os.MkdirAll(h.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		check := func(prog string, content string, file string, args func(string) []string) {
			path, err := exec.LookPath(prog)
			if err != nil {
				for _, d := range []string{"/usr/sbin", filepath.Join(os.Getenv("HOME"), ".cache/mast-bench/bin")} {
					if fileExists(filepath.Join(d, prog)) {
						path, err = filepath.Join(d, prog), nil
					}
				}
			}
			if err != nil {
				t.Logf("%s not installed; not checked", prog)
				return
			}
			conf := filepath.Join(h.Dir, file)
			if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(path, args(conf)...)
			cmd.Env = append(os.Environ(), "HOME="+h.Dir, "XDG_DATA_HOME="+h.Dir, "XDG_CONFIG_HOME="+h.Dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s hop %d services %d: %v\n%s\n--- config:\n%s", prog, h.Hop, h.Services, err, out, content)
			}
		}
		check("nginx", NginxConf(h), "nginx.conf", func(c string) []string {
			return []string{"-t", "-q", "-c", c, "-p", h.Dir, "-e", filepath.Join(h.Dir, "error.log")}
		})
		if h.Services > 0 {
			if err := os.WriteFile(filepath.Join(h.Dir, "hosts.map"), []byte(HAProxyHostMap(h.Services)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		check("haproxy", HAProxyConf(h), "haproxy.cfg", func(c string) []string { return []string{"-c", "-q", "-f", c} })
		check("caddy", Caddyfile(h), "Caddyfile", func(c string) []string { return []string{"validate", "--adapter", "caddyfile", "--config", c} })
	}
}

// TestStreamEcho runs the streaming load against the echo server on
// loopback, at a fixed rate and at saturation.
func TestStreamEcho(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewStreamServer()
	go s.Serve(lis)
	defer s.Stop()
	for _, qps := range []int{200, 0} {
		r, err := StreamLoad(context.Background(), StreamLoadConfig{Addr: lis.Addr().String(), Conns: 4, QPS: qps, Duration: 300 * time.Millisecond, Size: 1024})
		if err != nil {
			t.Fatalf("qps %d: %v", qps, err)
		}
		if r.Requests == 0 || r.Errors != 0 || r.P50 <= 0 || r.P999 < r.P50 {
			t.Errorf("qps %d: %+v", qps, r)
		}
		if qps > 0 && r.Requests > int64(qps) {
			t.Errorf("qps %d for 0.3s sent %d messages: the rate is not held", qps, r.Requests)
		}
	}
	if _, err := StreamLoad(context.Background(), StreamLoadConfig{Addr: "127.0.0.1:1", Conns: 1, QPS: 10, Duration: 100 * time.Millisecond, Size: 8}); err == nil {
		t.Error("load against a closed port: nil error")
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 500, 90: 900, 99: 990, 99.9: 999, 100: 1000} {
		if got := Percentile(s, p); got != want {
			t.Errorf("Percentile(%v) = %d, want %d", p, got, want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("Percentile(nil) != 0")
	}
}

// TestStreamLoadDoesNotHang points the streaming load at a server that
// accepts HTTP/2 streams and never answers: the run must fail, not hang.
func TestStreamLoadDoesNotHang(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the stream grace period")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		<-ss.Context().Done() // accept, never reply
		return nil
	}))
	go s.Serve(lis)
	defer s.Stop()
	_, err = StreamLoad(context.Background(), StreamLoadConfig{Addr: lis.Addr().String(), Conns: 1, QPS: 10, Duration: 100 * time.Millisecond, Size: 8})
	if err == nil || !strings.Contains(err.Error(), "no echo") {
		t.Errorf("silent server: err = %v, want a warm-up failure", err)
	}
}

func TestParsePerfStat(t *testing.T) {
	var b strings.Builder
	b.WriteString("# started on Sun Dec  6 19:40:03 2026\n\n")
	for i, e := range SyscallEvents {
		switch i {
		case 1:
			fmt.Fprintf(&b, "<not counted>,,%s,0,100.00,,\n", e.Event)
		default:
			fmt.Fprintf(&b, "%d,,%s,169840990,100.00,,\n", 1000+i, e.Event)
		}
	}
	got, err := ParsePerfStat([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got["all"] != 1000 || got[SyscallEvents[1].Name] != 0 || got["read-eagain"] != 1002 || len(got) != len(SyscallEvents) {
		t.Errorf("ParsePerfStat = %v", got)
	}
	// A line out of order is refused rather than counted under the wrong name.
	if _, err := ParsePerfStat([]byte("5,,syscalls:sys_enter_futex,1,100.00,,\n")); err == nil {
		t.Error("a counter in the wrong position was accepted")
	}
	if _, err := ParsePerfStat([]byte("# nothing\n")); err == nil {
		t.Error("empty output was accepted")
	}
}

func TestGoRuntimeOver(t *testing.T) {
	b := []float64{0, 1e-6, 1e-5, 1e-4, 1e-3}
	before := admin.RuntimeStats{GCCycles: 10, AllocBytes: 1000, AllocObjects: 10,
		GCPauses:       admin.Histogram{Buckets: b, Counts: []uint64{5, 0, 0, 0}},
		SchedLatencies: admin.Histogram{Buckets: b, Counts: []uint64{100, 0, 0, 0}}}
	after := admin.RuntimeStats{GCCycles: 12, AllocBytes: 201000, AllocObjects: 2010,
		GCPauses:       admin.Histogram{Buckets: b, Counts: []uint64{5, 2, 1, 0}},
		SchedLatencies: admin.Histogram{Buckets: b, Counts: []uint64{1090, 9, 0, 1}}}
	got := GoRuntimeOver(before, after, 1000)
	want := map[string]float64{"GC cycles / 1,000 req": 2, "alloc B / req": 200, "allocs / req": 2, "GC pause max µs": 100,
		"sched latency p99 µs": 1, "sched latency p99.9 µs": 10, "sched latency max µs": 1e3}
	for k, v := range want {
		if d := got[k] - v; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(GoRuntimeFigures) {
		t.Errorf("%d figures, want %d", len(got), len(GoRuntimeFigures))
	}
}

func TestWithNginxH2Up(t *testing.T) {
	tests := []struct {
		peers  []Peer
		protos []Protocol
		want   string
	}{
		{[]Peer{Mast, Nginx, HAProxy}, []Protocol{HTTP2}, "mast,nginx,nginx-h2up,haproxy"},
		{[]Peer{Mast, Nginx, HAProxy}, []Protocol{HTTP1, GRPC}, "mast,nginx,haproxy"},
		{[]Peer{Mast, HAProxy}, []Protocol{HTTP2}, "mast,haproxy"},
		{[]Peer{NginxH2Up, Nginx}, []Protocol{HTTP2}, "nginx-h2up,nginx"},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range WithNginxH2Up(tt.peers, tt.protos) {
			got = append(got, string(p))
		}
		if s := strings.Join(got, ","); s != tt.want {
			t.Errorf("WithNginxH2Up(%v, %v) = %s, want %s", tt.peers, tt.protos, s, tt.want)
		}
	}
	if (Path{Peer: NginxH2Up, Hops: 2}).Runs(HTTP1) || !(Path{Peer: NginxH2Up, Hops: 2}).Runs(HTTP2) || !(Path{Peer: Nginx, Hops: 2}).Runs(HTTP1) {
		t.Error("nginx-h2up must run on h2c only, nginx on every protocol")
	}
}

func TestFortioArgsUniform(t *testing.T) {
	s := LoadSpec{Proto: HTTP2, Target: Target{Addr: "127.0.0.1:1"}, QPS: 1000, Conns: 16, Duration: time.Second, BodySize: 8, Uniform: true}
	if args := strings.Join(FortioArgs(s), " "); !strings.Contains(args, " -uniform ") {
		t.Errorf("uniform fixed rate: %s", args)
	}
	s.QPS = 0 // saturation has no period to spread over
	if args := strings.Join(FortioArgs(s), " "); strings.Contains(args, "-uniform") {
		t.Errorf("uniform saturation: %s", args)
	}
	s.QPS, s.Uniform = 1000, false
	if args := strings.Join(FortioArgs(s), " "); strings.Contains(args, "-uniform") {
		t.Errorf("default: %s", args)
	}
}

// TestNginxH2UpstreamChain runs nginx's two hops (when nginx is installed)
// in front of a Go h2c server and sends h2c requests through the plaintext
// and the mutual-TLS chain: with H2Upstream the server sees HTTP/2, and
// the second hop's plaintext h2c port accepts only HTTP/2, so the hop
// between them is HTTP/2 too; without it (nginx's h2c row) the server sees
// HTTP/1.1.
func TestNginxH2UpstreamChain(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil && fileExists("/usr/sbin/nginx") {
		nginx, err = "/usr/sbin/nginx", nil
	}
	if err != nil {
		t.Skip("nginx not installed")
	}
	const first, second, server = "127.77.7.1", "127.77.7.2", "127.77.7.9"
	lis, err := net.Listen("tcp", net.JoinHostPort(server, strconv.Itoa(HTTP2.AppPort())))
	if err != nil {
		t.Skipf("cannot listen on the test server's address: %v", err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	seen := make(chan string, 16)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Proto
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(body)
	})}
	go srv.Serve(lis)
	defer srv.Close()
	dir := t.TempDir()
	certs, err := WriteCerts(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	var cp http.Protocols
	cp.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &cp}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, h2up := range []bool{true, false} {
		wantProto := "HTTP/1.1"
		if h2up {
			wantProto = "HTTP/2.0"
		}
		stop := startNginxChain(t, nginx, filepath.Join(dir, fmt.Sprint(h2up)), certs, first, second, server, h2up)
		for _, port := range []int{HTTP2.Port(), HTTP2.Port() + TLSPortOffset} {
			url := fmt.Sprintf("http://%s:%d/echo", first, port)
			resp, err := client.Post(url, "application/octet-stream", strings.NewReader("hello"))
			if err != nil {
				t.Errorf("h2up %v: POST %s: %v", h2up, url, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hello" || resp.ProtoMajor != 2 {
				t.Errorf("h2up %v: POST %s: %s %d %q", h2up, url, resp.Proto, resp.StatusCode, body)
				continue
			}
			if got := <-seen; got != wantProto {
				t.Errorf("h2up %v: POST %s: the server saw %s, want %s", h2up, url, got, wantProto)
			}
		}
		client.CloseIdleConnections()
		stop()
	}
}

// startNginxChain starts nginx's two hops with NginxConf, waits for the
// h2c ports of both hops, and returns a function that stops both.
func startNginxChain(t *testing.T, nginx, dir string, certs Certs, first, second, server string, h2up bool) func() {
	t.Helper()
	var cmds []*exec.Cmd
	stop := func() {
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGTERM)
			_ = c.Wait()
		}
		cmds = nil
	}
	t.Cleanup(stop)
	for _, h := range []HopConfig{{Hop: 1, IP: first, Next: second}, {Hop: 2, IP: second, Next: server}} {
		h.Dir, h.Certs, h.Workers, h.H2Upstream = filepath.Join(dir, fmt.Sprint(h.Hop)), certs, 1, h2up
		if err := os.MkdirAll(h.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(h.Dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(NginxConf(h)), 0o644); err != nil {
			t.Fatal(err)
		}
		c := exec.Command(nginx, "-c", conf, "-p", h.Dir, "-e", filepath.Join(h.Dir, "error.log"))
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, ip := range []string{first, second} {
		for _, port := range []int{HTTP2.Port(), HTTP2.Port() + TLSPortOffset} {
			if err := waitPort(context.Background(), net.JoinHostPort(ip, strconv.Itoa(port)), 10*time.Second); err != nil {
				t.Fatalf("nginx h2up %v: %v", h2up, err)
			}
		}
	}
	return stop
}

func TestPathLabel(t *testing.T) {
	for _, tt := range [][3]string{
		{"http2", "nginx 2-hop", "nginx 2-hop (HTTP/1.1 to the backend)"},
		{"http2", "nginx-h2up 2-hop mTLS", "nginx-h2up 2-hop mTLS (HTTP/2 to the backend)"},
		{"http2", "mast 2-hop", "mast 2-hop"},
		{"http1", "nginx 2-hop", "nginx 2-hop"},
	} {
		if got := pathLabel(Protocol(tt[0]), tt[1]); got != tt[2] {
			t.Errorf("pathLabel(%s, %s) = %q, want %q", tt[0], tt[1], got, tt[2])
		}
	}
}

func TestH2cVsNginx(t *testing.T) {
	sum := func(path string, cpu, p50 float64) *Summary {
		return &Summary{Protocol: HTTP2, Path: path, CPUPer1000Total: Stat{Median: cpu, N: 1}, Added: []float64{p50, 0, 0, 0}}
	}
	r := &Report{Summaries: []*Summary{sum("mast 2-hop", 0.120, 2), sum("nginx 2-hop", 0.100, 1), sum("nginx-h2up 2-hop", 0.150, 3)}}
	got := r.h2cVsNginx()
	for _, want := range []string{
		"Two hops, Mast against nginx-h2up (HTTP/2 to the backend): CPU 0.120 vs 0.150 s / 1,000 req (0.80×), added p50 +2.000 vs +3.000 ms.",
		"Two hops, Mast against nginx (HTTP/1.1 to the backend): CPU 0.120 vs 0.100 s / 1,000 req (1.20×), added p50 +2.000 vs +1.000 ms.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("h2cVsNginx() = %q, want a line %q", got, want)
		}
	}
	if strings.Contains(got, "mTLS") {
		t.Errorf("h2cVsNginx() has an mTLS line without mTLS figures: %q", got)
	}
}

func TestCPUSecondsPrefersSchedstat(t *testing.T) {
	before := Usage{CPUSeconds: 1.00, RunNs: 1_003_000_000}
	tests := []struct {
		name  string
		after Usage
		want  float64
	}{
		{"nanoseconds", Usage{CPUSeconds: 1.36, RunNs: 1_367_500_000}, 0.3645},
		{"within two ticks below: nanoseconds", Usage{CPUSeconds: 1.36, RunNs: 1_348_000_000}, 0.345},
		{"a thread exited: ticks", Usage{CPUSeconds: 1.36, RunNs: 1_200_000_000}, 0.36},
		{"sum shrank: ticks", Usage{CPUSeconds: 1.36, RunNs: 900_000_000}, 0.36},
		{"no schedstat: ticks", Usage{CPUSeconds: 1.36}, 0.36},
	}
	for _, tt := range tests {
		if got := cpuSeconds(before, tt.after); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: cpuSeconds = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := cpuSeconds(Usage{CPUSeconds: 1}, Usage{CPUSeconds: 1.5, RunNs: 7}); got != 0.5 {
		t.Errorf("before without schedstat: %v, want the ticks' 0.5", got)
	}
}
