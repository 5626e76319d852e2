// Command dpbench benchmarks Mast's data plane against nginx, HAProxy and
// Caddy on loopback: fortio at a fixed 1,000 requests/s and at saturation,
// HTTP/1.1, HTTP/2, gRPC unary and streaming, through zero, one or two
// proxies, plaintext and with mutual TLS between the hops. It installs its
// peers on demand, prints a Markdown report and writes it, with every
// figure as JSON, to -out.
//
//	go run ./bench/dataplane/cmd/dpbench -quick   # a few minutes: HTTP/1.1 and gRPC, one repeat
//	go run ./bench/dataplane/cmd/dpbench -full    # every protocol, 3 repeats
//	go run ./bench/dataplane/cmd/dpbench -quick -telemetry -peers mast,nginx -mesh-services 0   # telemetry on vs off
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	dp "github.com/mast-mesh/mast/bench/dataplane"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case dp.StreamServeCmd:
			os.Exit(streamServe(os.Args[2:], os.Stderr))
		case dp.StreamLoadCmd:
			os.Exit(streamLoad(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dpbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "quick mode (the default): HTTP/1.1 and gRPC unary, one repeat, short runs")
	full := fs.Bool("full", false, "every protocol, -repeats repeats, longer runs")
	repeats := fs.Int("repeats", 0, "repeats (default 1 quick, 3 full)")
	fixed := fs.Duration("fixed", 0, "duration of each fixed-rate run (default 4s quick, 8s full)")
	sat := fs.Duration("saturation", 0, "duration of each saturation run (default 2s quick, 4s full)")
	qps := fs.Int("qps", 1000, "the fixed rate, requests/s")
	conns := fs.Int("c", 16, "connections")
	body := fs.Int("body", 1024, "request and response body bytes")
	uniform := fs.Bool("uniform", false, "pass fortio -uniform at the fixed rate: spread each connection's requests over the period instead of all 16 connections sending at its start (off by default: without it the fixed-rate p50 includes queueing behind the burst)")
	protocols := fs.String("protocols", "", "comma-separated: http1,http2,grpc,grpc-stream (default http1,grpc quick, all full)")
	peers := fs.String("peers", "mast,nginx,haproxy,caddy", "comma-separated proxies to compare (mast, nginx, nginx-h2up, haproxy, caddy); with nginx and http2, nginx-h2up (nginx with HTTP/2 on every h2c hop, run on h2c only) is added")
	mesh := fs.Int("mesh-services", 1000, "services of the memory scenario; 0 skips it")
	pinLoad := fs.String("pin-load", "", "taskset CPU list of the load generator and mastd (default: see README)")
	pinProxy := fs.String("pin-proxy", "", "taskset CPU list of the proxies")
	pinServer := fs.String("pin-server", "", "taskset CPU list of the server")
	noPin := fs.Bool("no-pin", false, "do not pin processes to CPUs")
	out := fs.String("out", "bench/results", "directory for the .md and .json results")
	name := fs.String("name", "", "result file name without extension (default dataplane-quick or dataplane-full)")
	work := fs.String("work", "", "directory for logs and generated configuration (default a new temporary directory)")
	cache := fs.String("cache", "", "where installed tools are kept (default $XDG_CACHE_HOME or ~/.cache, /mast-bench)")
	rev := fs.String("mast-rev", "", "build mastd and mast-proxy from this git revision (git archive) instead of the working tree")
	telemetry := fs.Bool("telemetry", false, "also run Mast's two hops with Istio's metrics and tracing at 1 % on (its other paths then run with them off) and report the cost against nginx")
	syscalls := fs.Bool("syscalls", false, "count each proxy's system calls per request at the fixed rate with perf stat (perf's tracepoints add about 2% to every proxy's CPU time, so it is off by default)")
	render := fs.String("render", "", "re-render the Markdown of an earlier run from its .json (written beside it) and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *render != "" {
		return rerender(*render, stdout, stderr)
	}
	if *quick && *full {
		fmt.Fprintln(stderr, "dpbench: -quick and -full exclude each other")
		return 2
	}
	mode := "quick"
	if *full {
		mode = "full"
	}
	def := func(d *time.Duration, q, f time.Duration) {
		if *d == 0 {
			*d = q
			if *full {
				*d = f
			}
		}
	}
	def(fixed, 4*time.Second, 8*time.Second)
	def(sat, 2*time.Second, 4*time.Second)
	if *repeats == 0 {
		*repeats = 1
		if *full {
			*repeats = 3
		}
	}
	if *protocols == "" {
		*protocols = "http1,grpc"
		if *full {
			*protocols = "http1,http2,grpc,grpc-stream"
		}
	}
	var protos []dp.Protocol
	for _, p := range strings.Split(*protocols, ",") {
		ok := false
		for _, known := range dp.Protocols {
			if string(known) == p {
				protos, ok = append(protos, known), true
			}
		}
		if !ok {
			fmt.Fprintf(stderr, "dpbench: -protocols: unknown protocol %q (want http1, http2, grpc, grpc-stream)\n", p)
			return 2
		}
	}
	var peerList []dp.Peer
	for _, p := range strings.Split(*peers, ",") {
		ok := false
		for _, known := range dp.Peers {
			if string(known) == p {
				peerList, ok = append(peerList, known), true
			}
		}
		if !ok && p != "" {
			fmt.Fprintf(stderr, "dpbench: -peers: unknown peer %q (want mast, nginx, nginx-h2up, haproxy, caddy)\n", p)
			return 2
		}
	}
	peerList = dp.WithNginxH2Up(peerList, protos)
	pin := dp.DefaultPinning(runtime.NumCPU())
	if *noPin {
		pin = dp.Pinning{}
	}
	for _, o := range []struct {
		flag string
		dst  *string
	}{{*pinLoad, &pin.Load}, {*pinProxy, &pin.Proxy}, {*pinServer, &pin.Server}} {
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	if *name == "" {
		*name = "dataplane-" + mode
	}
	if *cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		*cache = filepath.Join(base, "mast-bench")
	}
	if *work == "" {
		d, err := os.MkdirTemp("", "dpbench-")
		if err != nil {
			fmt.Fprintln(stderr, "dpbench:", err)
			return 1
		}
		*work = d
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "dpbench:", err)
		return 1
	}
	repo, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(stderr, "dpbench:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	perf := ""
	if *syscalls {
		if p, err := exec.LookPath("perf"); err == nil {
			perf = p
		} else {
			log.Info("perf not found: system calls are not counted")
		}
	}
	log.Info("dpbench", "mode", mode, "work", *work, "cache", *cache, "pinning", fmt.Sprintf("%+v", pin))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := dp.Run(ctx, dp.Config{Mode: mode, Repeats: *repeats, FixedDuration: *fixed, SatDuration: *sat, QPS: *qps, Conns: *conns,
		BodySize: *body, Uniform: *uniform, Protocols: protos, Peers: peerList, MeshServices: *mesh, Pin: pin, WorkDir: *work, CacheDir: *cache,
		RepoDir: repo, MastRev: *rev, SelfBin: self, Telemetry: *telemetry, Perf: perf, Log: log})
	if err != nil {
		fmt.Fprintln(stderr, "dpbench:", err, "(logs in", *work+")")
		return 1
	}
	rep.Command = "go run ./bench/dataplane/cmd/dpbench " + strings.Join(args, " ")
	md := rep.Markdown()
	js, err := rep.JSON()
	if err != nil {
		fmt.Fprintln(stderr, "dpbench:", err)
		return 1
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "dpbench:", err)
		return 1
	}
	for ext, b := range map[string][]byte{".md": []byte(md), ".json": append(js, '\n')} {
		if err := os.WriteFile(filepath.Join(*out, *name+ext), b, 0o644); err != nil {
			fmt.Fprintln(stderr, "dpbench:", err)
			return 1
		}
	}
	fmt.Fprint(stdout, md)
	return 0
}

func streamServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(dp.StreamServeCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8078", "listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dp.ServeStream(ctx, *addr); err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "stream-serve:", err)
		return 1
	}
	return 0
}

func streamLoad(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(dp.StreamLoadCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c dp.StreamLoadConfig
	fs.StringVar(&c.Addr, "addr", "", "host:port")
	fs.StringVar(&c.Authority, "authority", "", ":authority to send")
	fs.IntVar(&c.Conns, "c", 16, "connections, one stream each")
	fs.IntVar(&c.QPS, "qps", 1000, "messages/s in all; 0 for as fast as echoes return")
	fs.DurationVar(&c.Duration, "t", 5*time.Second, "duration")
	fs.IntVar(&c.Size, "size", 1024, "message bytes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	r, err := dp.StreamLoad(context.Background(), c)
	if err != nil {
		fmt.Fprintln(stderr, "stream-load:", err)
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(r); err != nil {
		fmt.Fprintln(stderr, "stream-load:", err)
		return 1
	}
	return 0
}

func rerender(path string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "dpbench:", err)
		return 1
	}
	var rep dp.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		fmt.Fprintf(stderr, "dpbench: %s: %v\n", path, err)
		return 1
	}
	rep.Rerender()
	md := rep.Markdown()
	if err := os.WriteFile(strings.TrimSuffix(path, ".json")+".md", []byte(md), 0o644); err != nil {
		fmt.Fprintln(stderr, "dpbench:", err)
		return 1
	}
	fmt.Fprint(stdout, md)
	return 0
}
