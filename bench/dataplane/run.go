package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/proxy/admin"
)

// Config is one benchmark run.
type Config struct {
	Mode          string // "quick" or "full"
	Repeats       int
	FixedDuration time.Duration // each fixed-rate run
	SatDuration   time.Duration // each saturation run
	QPS           int           // the fixed rate (Istio's 1,000 requests/s)
	Conns         int           // connections (Istio's 16)
	BodySize      int           // request and response body bytes (1 KiB)
	// Uniform passes fortio -uniform at the fixed rate: each connection's
	// requests are spread over the period instead of all connections
	// sending at its start (fortio loads only; the streaming client
	// already spreads its sends).
	Uniform      bool
	Protocols    []Protocol
	Peers        []Peer
	MeshServices int // services of the memory scenario (1,000)
	Pin          Pinning
	WorkDir      string // logs and generated configuration
	CacheDir     string // installed tools
	RepoDir      string // the Mast module, built for mastd and mast-proxy
	MastRev      string // build that git revision instead of the working tree
	SelfBin      string // the dpbench binary (gRPC streaming subcommands)
	// Telemetry adds Mast's two hops with metrics and tracing on; Mast's
	// other paths then run with them off (see MastTelemetry).
	Telemetry bool
	// Perf, when set, is the perf binary: fixed-rate runs then count each
	// proxy's system calls (SyscallEvents).
	Perf string
	Log  *slog.Logger
}

// Pinning is which CPUs (taskset lists) each role runs on; empty: unpinned.
type Pinning struct {
	Load   string `json:"load"`   // fortio, the streaming client, mastd
	Proxy  string `json:"proxy"`  // every proxy process
	Server string `json:"server"` // fortio server and the streaming echo
}

// DefaultPinning keeps the load generator off the proxies' CPUs: with two
// CPUs the load generator (and mastd, idle during runs) gets CPU 0 and
// proxies and server share CPU 1; with four or more the server gets its own.
func DefaultPinning(ncpu int) Pinning {
	switch {
	case ncpu < 2:
		return Pinning{}
	case ncpu < 4:
		return Pinning{Load: "0", Proxy: "1", Server: "1"}
	default:
		return Pinning{Load: "0", Server: "1", Proxy: "2-" + strconv.Itoa(ncpu-1)}
	}
}

// cpuCount is how many CPUs a taskset list names (1 when unpinned is not
// meaningful, so it returns 0 for "").
func cpuCount(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		if !isRange {
			if err1 == nil {
				n++
			}
			continue
		}
		b, err2 := strconv.Atoi(hi)
		if err1 == nil && err2 == nil && b >= a {
			n += b - a + 1
		}
	}
	return n
}

type bench struct {
	cfg   Config
	tools Tools
	certs Certs
	procs map[string]*Process // by name: "mast-1", "nginx-2", "server", ...
	all   []*Process
	rep   *Report
	log   *slog.Logger

	// -telemetry mode: mastd's configuration directory, the current
	// switch, and the span sink.
	mastCfgDir  string
	telemetryOn bool
	sink        *spanSink
}

// Run installs the peers, starts them, runs every scenario and returns the
// report. It stops every process it started before returning.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	b := &bench{cfg: cfg, procs: map[string]*Process{}, log: cfg.Log,
		rep: &Report{Mode: cfg.Mode, Started: time.Now().UTC(), Pinning: cfg.Pin, Machine: DescribeMachine(cfg.RepoDir),
			Settings: Settings{QPS: cfg.QPS, Conns: cfg.Conns, BodySize: cfg.BodySize, Repeats: cfg.Repeats, Uniform: cfg.Uniform,
				FixedSeconds: cfg.FixedDuration.Seconds(), SaturationSeconds: cfg.SatDuration.Seconds(), MeshServices: cfg.MeshServices}}}
	defer b.stopAll()
	var err error
	if b.tools, err = Install(ctx, cfg.CacheDir, cfg.WorkDir, cfg.RepoDir, cfg.MastRev, cfg.Peers, cfg.Log); err != nil {
		return nil, err
	}
	// Every run uses the same addresses and CPUs: runs from other trees
	// on the machine wait for each other.
	unlock, err := lockMachine(ctx, runLock, cfg.Log)
	if err != nil {
		return nil, err
	}
	defer unlock()
	b.rep.Versions = b.tools.Versions
	var peers []Peer
	for _, p := range cfg.Peers {
		if why, missing := b.tools.Missing[p]; missing {
			b.rep.note("%s left out: %s", p, firstLine(why))
			continue
		}
		peers = append(peers, p)
	}
	if b.certs, err = WriteCerts(filepath.Join(cfg.WorkDir, "certs")); err != nil {
		return nil, err
	}
	if err := b.startServer(ctx); err != nil {
		return nil, err
	}
	started := []Peer{}
	for _, p := range peers {
		if err := b.startPeer(ctx, p, 0, ""); err != nil {
			b.rep.note("%s left out: %v", p, err)
			continue
		}
		started = append(started, p)
	}
	peers = started
	time.Sleep(2 * time.Second) // let every proxy settle before reading idle memory
	for _, p := range peers {
		for hop := 1; hop <= 2; hop++ {
			name := ProcName(p, hop)
			u, err := b.procs[name].Usage()
			if err != nil {
				return nil, err
			}
			b.rep.memory(p, hop).IdleRSS = u.RSS
			b.procs[name].ResetPeak()
		}
	}
	mtlsErr := b.mastMTLSAvailable(peers)
	paths := Paths(peers, cfg.Telemetry)
	for rep := 1; rep <= cfg.Repeats; rep++ {
		for _, proto := range cfg.Protocols {
			for _, path := range paths {
				if !path.Runs(proto) {
					continue
				}
				if path.Peer == Mast && path.TLS && mtlsErr != nil {
					if rep == 1 {
						b.rep.unavailable(proto, path, mtlsErr.Error())
					}
					continue
				}
				for _, sat := range []bool{false, true} {
					if err := ctx.Err(); err != nil {
						return nil, err
					}
					if path.Peer == Mast && cfg.Telemetry {
						if err := b.setMastTelemetry(ctx, path.Telemetry); err != nil {
							return nil, err
						}
					}
					run := b.runOne(ctx, rep, proto, path, sat)
					b.rep.Runs = append(b.rep.Runs, run)
					b.log.Info("run", "repeat", rep, "proto", proto, "path", path.Name(), "kind", run.Kind,
						"qps", fmt.Sprintf("%.0f", run.Result.QPS), "p50", run.Result.P50, "p99", run.Result.P99, "errors", run.Result.Errors, "err", run.Err)
				}
			}
		}
	}
	for _, p := range peers {
		for hop := 1; hop <= 2; hop++ {
			b.rep.memory(p, hop).LoadRSS = b.procs[ProcName(p, hop)].Peak()
		}
	}
	if b.sink != nil {
		b.rep.note("telemetry: %d span batches reached the Zipkin sink", b.sink.batches.Load())
	}
	b.stopAll()
	if cfg.MeshServices > 0 {
		for _, p := range peers {
			if p == NginxH2Up {
				continue // the mesh is nginx's own configuration
			}
			rss, err := b.meshMemory(ctx, p)
			if err != nil {
				b.rep.note("%s with a %d-service mesh: %v", p, cfg.MeshServices, err)
				continue
			}
			b.rep.memory(p, 1).MeshRSS = rss
		}
	}
	b.rep.Elapsed = time.Since(b.rep.Started).Round(time.Second).String()
	b.rep.Summarize()
	return b.rep, nil
}

func (b *bench) start(ctx context.Context, name, cpus string, env []string, argv ...string) (*Process, error) {
	p, err := Start(ctx, b.cfg.WorkDir, name, cpus, env, argv...)
	if err != nil {
		return nil, err
	}
	b.procs[name] = p
	b.all = append(b.all, p)
	return p, nil
}

func (b *bench) stopAll() {
	for i := len(b.all) - 1; i >= 0; i-- {
		b.all[i].Stop(3 * time.Second)
	}
	if b.sink != nil {
		b.sink.close()
		b.sink = nil
	}
	b.all = nil
	b.procs = map[string]*Process{}
}

func (b *bench) startServer(ctx context.Context) error {
	if _, err := b.start(ctx, "server", b.cfg.Pin.Server, nil, b.tools.Fortio, "server", "-loglevel", "Warning",
		"-http-port", ServerIP+":28080", "-grpc-port", ServerIP+":28079", "-redirect-port", "disabled"); err != nil {
		return err
	}
	if _, err := b.start(ctx, "stream-server", b.cfg.Pin.Server, nil, b.cfg.SelfBin, StreamServeCmd, "-addr", ServerIP+":28078"); err != nil {
		return err
	}
	for _, port := range []int{28080, 28079, 28078} {
		if err := waitPort(ctx, ServerIP+":"+strconv.Itoa(port), 20*time.Second); err != nil {
			return fmt.Errorf("server: %w\n%s", err, b.procs["server"].LogTail(2000))
		}
	}
	return nil
}

// startPeer starts a peer's two hops (or, with services > 0, one instance
// at ip holding a mesh of that many services).
func (b *bench) startPeer(ctx context.Context, p Peer, services int, ip string) error {
	if p == Mast {
		return b.startMast(ctx, services)
	}
	first, second := HopIPs(p)
	hops := []HopConfig{{Hop: 1, IP: first, Next: second}, {Hop: 2, IP: second, Next: ServerIP}}
	if services > 0 {
		hops = []HopConfig{{Hop: 1, IP: ip, Next: ServerIP, Services: services}}
	}
	for _, h := range hops {
		name := ProcName(p, h.Hop)
		if services > 0 {
			name = string(p) + "-mesh"
		}
		h.Dir = filepath.Join(b.cfg.WorkDir, name)
		h.Certs = b.certs
		h.Workers = max(cpuCount(b.cfg.Pin.Proxy), 1)
		if err := os.MkdirAll(h.Dir, 0o755); err != nil {
			return err
		}
		var argv []string
		var env []string
		switch p {
		case Nginx, NginxH2Up:
			h.H2Upstream = p == NginxH2Up
			conf := filepath.Join(h.Dir, "nginx.conf")
			if err := os.WriteFile(conf, []byte(NginxConf(h)), 0o644); err != nil {
				return err
			}
			argv = []string{b.tools.Nginx, "-c", conf, "-p", h.Dir, "-e", filepath.Join(h.Dir, "error.log")}
		case HAProxy:
			conf := filepath.Join(h.Dir, "haproxy.cfg")
			if err := os.WriteFile(conf, []byte(HAProxyConf(h)), 0o644); err != nil {
				return err
			}
			if services > 0 {
				if err := os.WriteFile(filepath.Join(h.Dir, "hosts.map"), []byte(HAProxyHostMap(services)), 0o644); err != nil {
					return err
				}
			}
			argv = []string{b.tools.HAProxy, "-db", "-f", conf}
		case Caddy:
			conf := filepath.Join(h.Dir, "Caddyfile")
			if err := os.WriteFile(conf, []byte(Caddyfile(h)), 0o644); err != nil {
				return err
			}
			argv = []string{b.tools.Caddy, "run", "--adapter", "caddyfile", "--config", conf}
			env = []string{"XDG_DATA_HOME=" + h.Dir, "XDG_CONFIG_HOME=" + h.Dir, "HOME=" + h.Dir}
		}
		proc, err := b.start(ctx, name, b.cfg.Pin.Proxy, env, argv...)
		if err != nil {
			return err
		}
		if err := waitPort(ctx, h.IP+":28080", 30*time.Second); err != nil {
			return fmt.Errorf("%s: %w\n%s", name, err, proc.LogTail(2000))
		}
	}
	return nil
}

// startMast starts mastd and the client and server sidecars (or, with
// services > 0, mastd with the mesh and one sidecar at MastMeshIP).
func (b *bench) startMast(ctx context.Context, services int) error {
	suffix := ""
	if services > 0 {
		suffix = "-mesh"
	}
	cfgDir := filepath.Join(b.cfg.WorkDir, "mastd"+suffix+"-config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "bench.yaml"), []byte(MastConfig(services)), 0o644); err != nil {
		return err
	}
	var meshArgs []string
	if b.cfg.Telemetry && services == 0 {
		mesh := filepath.Join(b.cfg.WorkDir, "mesh.yaml")
		if err := os.WriteFile(mesh, []byte(MastTelemetryMesh()), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cfgDir, "telemetry.yaml"), []byte(MastTelemetry(false)), 0o644); err != nil {
			return err
		}
		b.telemetryOn, b.mastCfgDir, meshArgs = false, cfgDir, []string{"--mesh-config", mesh}
		if err := b.startSpanSink(); err != nil {
			return err
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	xds := "127.0.0.1:" + strconv.Itoa(ports[0])
	caDir, secure := filepath.Join(b.cfg.WorkDir, "ca"+suffix), "127.0.0.1:"+strconv.Itoa(ports[2])
	// Every sidecar gets a workload certificate, as in a mesh with mTLS:
	// tokens are issued from the CA's state before mastd opens it.
	tokens, err := issueTokens(caDir, map[string]string{ProcName(Mast, 1): "client", ProcName(Mast, 2): "echo", "mast-mesh": "client"})
	if err != nil {
		return err
	}
	mastdArgs := append([]string{b.tools.Mastd, "--config", cfgDir, "--xds-addr", xds,
		"--monitoring-addr", "127.0.0.1:" + strconv.Itoa(ports[1]), "--ca-dir", caDir,
		"--secure-xds-addr", secure, "--log-level", "warn",
		// mastd's rate-limit service would take its fixed 8081, which a
		// `mast up` or a test on the machine may hold.
		"--ratelimit-addr", "127.0.0.1:0"}, meshArgs...)
	mastd, err := b.start(ctx, "mastd"+suffix, b.cfg.Pin.Load, nil, mastdArgs...)
	if err != nil {
		return err
	}
	if err := waitPort(ctx, xds, 30*time.Second); err != nil {
		return fmt.Errorf("mastd: %w\n%s", err, mastd.LogTail(2000))
	}
	type sidecar struct {
		name, ip, workload, labels, sa string
		wait                           []int
	}
	sidecars := []sidecar{
		{ProcName(Mast, 2), MastServerIP, "echo", "app=echo", "echo", []int{28080, 28081, 28079, 28078}},
		{ProcName(Mast, 1), MastClientIP, "client", "app=client", "client", []int{MastOutbound}},
	}
	if services > 0 {
		sidecars = []sidecar{{"mast-mesh", MastMeshIP, "client-mesh", "app=client", "client", []int{MastOutbound}}}
	}
	for _, s := range sidecars {
		id := fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", s.ip, s.workload, Namespace, Namespace)
		proc, err := b.start(ctx, s.name, b.cfg.Pin.Proxy, nil, b.tools.MastProxy, "--node-id", id, "--xds-addr", secure,
			"--admin-addr", s.ip+":15000", "--labels", s.labels, "--meta", "INTERCEPTION_MODE=NONE", "--meta", "SERVICE_ACCOUNT="+s.sa,
			"--ca-addr", secure, "--ca-root-file", filepath.Join(caDir, "root-cert.pem"), "--token-file", tokens[s.name],
			"--log-level", "warn")
		if err != nil {
			return err
		}
		for _, port := range s.wait {
			if err := waitPort(ctx, s.ip+":"+strconv.Itoa(port), 30*time.Second); err != nil {
				return fmt.Errorf("%s: %w\n%s", s.name, err, proc.LogTail(2000))
			}
		}
	}
	return nil
}

// mastMTLSAvailable reports why Mast's mTLS scenario cannot run: a NACK in
// a sidecar's log (the proxy refuses the ISTIO_MUTUAL cluster or the TLS
// listener), or nil when both sidecars took the configuration.
func (b *bench) mastMTLSAvailable(peers []Peer) error {
	found := false
	for _, p := range peers {
		found = found || p == Mast
	}
	if !found {
		return errors.New("mast not running")
	}
	for _, name := range []string{ProcName(Mast, 1), ProcName(Mast, 2)} {
		log, _ := os.ReadFile(b.procs[name].Log)
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "NACK") {
				why := strings.TrimSpace(line)
				if _, e, ok := strings.Cut(line, " err="); ok {
					why = strings.Trim(strings.TrimSpace(e), `"`)
				}
				return fmt.Errorf("not available: %s NACKs the ISTIO_MUTUAL configuration: %s", name, strings.ReplaceAll(why, `\"`, `"`))
			}
		}
	}
	return nil
}

// runOne is one load run through path, with the CPU time and peak RSS of
// every proxy on it.
func (b *bench) runOne(ctx context.Context, rep int, proto Protocol, path Path, sat bool) RunResult {
	run := RunResult{Repeat: rep, Protocol: proto, Path: path.Name(), Kind: "fixed", CPUPer1000: map[string]float64{},
		WaitUsPerReq: map[string]float64{}, SlicesPerReq: map[string]float64{}, PeakRSS: map[string]uint64{}}
	spec := LoadSpec{Proto: proto, Target: TargetFor(path, proto), QPS: b.cfg.QPS, Conns: b.cfg.Conns, Duration: b.cfg.FixedDuration,
		BodySize: b.cfg.BodySize, Uniform: b.cfg.Uniform, JSONPath: filepath.Join(b.cfg.WorkDir, "fortio.json")}
	if sat {
		run.Kind, spec.QPS, spec.Duration = "saturation", 0, b.cfg.SatDuration
	}
	before := map[string]Usage{}
	for _, name := range spec.Target.Procs {
		u, err := b.procs[name].Usage()
		if err != nil {
			run.Err = err.Error()
			return run
		}
		before[name] = u
	}
	rtBefore := map[string]admin.RuntimeStats{}
	if !sat {
		for _, name := range spec.Target.Procs {
			if addr := mastAdmin(name); addr != "" {
				if rs, err := fetchRuntime(ctx, addr); err == nil {
					rtBefore[name] = rs
				} else {
					b.log.Warn("Go runtime figures left out", "proc", name, "err", err)
				}
			}
		}
	}
	counters := map[string]*syscallCounter{}
	if b.cfg.Perf != "" && !sat {
		for _, name := range spec.Target.Procs {
			c, err := startSyscallCount(b.cfg.Perf, before[name].Pids, filepath.Join(b.cfg.WorkDir, name+".perf.csv"))
			if err != nil {
				b.log.Warn("system calls not counted", "proc", name, "err", err)
				continue
			}
			counters[name] = c
		}
	}
	var argv []string
	if proto == GRPCStream {
		argv = append([]string{b.cfg.SelfBin}, StreamArgs(spec)...)
	} else {
		_ = os.Remove(spec.JSONPath)
		argv = append([]string{b.tools.Fortio}, FortioArgs(spec)...)
	}
	if b.cfg.Pin.Load != "" {
		argv = append([]string{"taskset", "-c", b.cfg.Pin.Load}, argv...)
	}
	// The load generator's own timeouts should end a stuck run; this bounds
	// it in case they do not.
	runCtx, cancel := context.WithTimeout(ctx, spec.Duration+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, argv[0], argv[1:]...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		run.Err = err.Error()
		return run
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var waitErr error
sample:
	for {
		select {
		case waitErr = <-done:
			break sample
		case <-tick.C:
			for _, name := range spec.Target.Procs {
				u, err := b.procs[name].Usage()
				if err == nil && u.RSS > run.PeakRSS[name] {
					run.PeakRSS[name] = u.RSS
				}
			}
		}
	}
	rtAfter := map[string]admin.RuntimeStats{}
	for name := range rtBefore {
		if rs, err := fetchRuntime(ctx, mastAdmin(name)); err == nil {
			rtAfter[name] = rs
		}
	}
	sysc := map[string]map[string]uint64{}
	for name, c := range counters {
		counts, err := c.stop()
		if err != nil {
			b.log.Warn("system calls not counted", "proc", name, "err", err)
			continue
		}
		sysc[name] = counts
	}
	after := map[string]Usage{}
	for _, name := range spec.Target.Procs {
		u, err := b.procs[name].Usage()
		if err != nil {
			run.Err = err.Error()
			return run
		}
		after[name] = u
	}
	var res LoadResult
	var err error
	if proto == GRPCStream {
		res, err = parseStreamOutput(stdout.String())
	} else {
		var raw []byte
		if raw, err = os.ReadFile(spec.JSONPath); err == nil {
			res, err = ParseFortio(raw)
		}
	}
	switch {
	case waitErr != nil:
		run.Err = fmt.Sprintf("load generator: %v: %s", waitErr, errorLines(stderr.String()))
	case err != nil:
		run.Err = fmt.Sprintf("load generator: %v: %s", err, errorLines(stderr.String()))
	}
	run.Result = res
	total := float64(res.Requests + res.Errors)
	for _, name := range spec.Target.Procs {
		if total > 0 {
			a, b := after[name], before[name]
			run.CPUPer1000[name] = cpuSeconds(b, a) / (total / 1000)
			if run.SysCPUPer1000 == nil {
				run.SysCPUPer1000 = map[string]float64{}
			}
			run.SysCPUPer1000[name] = (a.SysSeconds - b.SysSeconds) / (total / 1000)
			run.WaitUsPerReq[name] = float64(a.WaitNs-b.WaitNs) / 1e3 / total
			run.SlicesPerReq[name] = float64(a.Slices-b.Slices) / total
			if a, ok := rtAfter[name]; ok {
				if run.GoRuntime == nil {
					run.GoRuntime = map[string]map[string]float64{}
				}
				run.GoRuntime[name] = GoRuntimeOver(rtBefore[name], a, total)
			}
			if counts := sysc[name]; counts != nil {
				per := map[string]float64{}
				for k, v := range counts {
					per[k] = float64(v) / total
				}
				if run.SyscallsPerReq == nil {
					run.SyscallsPerReq = map[string]map[string]float64{}
				}
				run.SyscallsPerReq[name] = per
			}
		}
	}
	if res.Requests+res.Errors > 0 && float64(res.Errors) > 0.01*float64(res.Requests+res.Errors) && run.Err == "" {
		run.Err = fmt.Sprintf("%d of %d requests failed: %s", res.Errors, res.Requests+res.Errors, lastLines(stderr.String(), 3))
	}
	return run
}

// meshMemory starts one instance of a peer configured with the mesh, waits
// for it to load, and returns its RSS.
func (b *bench) meshMemory(ctx context.Context, p Peer) (uint64, error) {
	defer b.stopAll()
	ip := map[Peer]string{Mast: MastMeshIP, Nginx: "127.77.3.3", HAProxy: "127.77.4.3", Caddy: "127.77.5.3"}[p]
	if err := b.startPeer(ctx, p, b.cfg.MeshServices, ip); err != nil {
		return 0, err
	}
	name := string(p) + "-mesh"
	if p == Mast {
		if err := waitClusters(ctx, "http://"+MastMeshIP+":15000/clusters", b.cfg.MeshServices, 60*time.Second); err != nil {
			return 0, err
		}
	}
	// Let the runtime settle (Go frees to the OS in the background), then
	// take the smallest of a few readings.
	time.Sleep(3 * time.Second)
	var best uint64
	for i := 0; i < 5; i++ {
		u, err := b.procs[name].Usage()
		if err != nil {
			return 0, err
		}
		if best == 0 || u.RSS < best {
			best = u.RSS
		}
		time.Sleep(200 * time.Millisecond)
	}
	return best, nil
}

// waitClusters polls a mast-proxy admin /clusters until it lists more than
// n distinct clusters.
func waitClusters(ctx context.Context, url string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	seen := 0
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var body strings.Builder
			buf := make([]byte, 32<<10)
			for {
				k, rerr := resp.Body.Read(buf)
				body.Write(buf[:k])
				if rerr != nil {
					break
				}
			}
			resp.Body.Close()
			names := map[string]bool{}
			for _, line := range strings.Split(body.String(), "\n") {
				if name, _, ok := strings.Cut(line, "::"); ok {
					names[name] = true
				}
			}
			if seen = len(names); seen > n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: %d clusters after %s, want more than %d", url, seen, limit, n)
}

func waitPort(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s: %w", addr, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// errorLines picks the load generator's error messages from its output.
func errorLines(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, "Aborting") || strings.Contains(line, "rror") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	if len(out) == 0 {
		return lastLines(s, 3)
	}
	if len(out) > 2 {
		out = out[len(out)-2:]
	}
	return strings.Join(out, " | ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// issueTokens opens (or creates) the CA state in caDir and writes a bootstrap
// token for each proxy name → service account (namespace Namespace); it
// returns the token files by proxy name.
func issueTokens(caDir string, accounts map[string]string) (map[string]string, error) {
	if err := os.MkdirAll(caDir, 0o700); err != nil {
		return nil, err
	}
	c, err := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local"})
	if err != nil {
		return nil, fmt.Errorf("bench CA in %s: %w", caDir, err)
	}
	out := map[string]string{}
	for name, sa := range accounts {
		path := filepath.Join(caDir, name+".jwt")
		if err := c.WriteTokenFile(path, Namespace, sa, 24*time.Hour); err != nil {
			return nil, err
		}
		out[name] = path
	}
	return out, nil
}
