// Command cpbench benchmarks mastd's control plane: sidecar config
// generation in process, then mastd (controlplane.Run, in a child process)
// watching a config directory while fleets of simulated proxies (SotW and
// Delta ADS over gRPC on loopback) receive config and endpoint changes. It
// prints a Markdown report and writes it, with the raw figures as JSON, to
// -out.
//
//	go run ./bench/controlplane/cmd/cpbench -quick   # a few minutes, skips 10,000 services x 1,000 proxies
//	go run ./bench/controlplane/cmd/cpbench -full
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	cpb "github.com/mast-mesh/mast/bench/controlplane"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == cpb.ServeFlag {
		os.Exit(cpb.ServeChild(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cpbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "quick mode (the default): skip 10,000 services x 1,000 proxies, shorter rounds")
	full := fs.Bool("full", false, "every combination, longer rounds")
	services := fs.String("services", "100,1000,10000", "mesh sizes (services, 5 endpoints each)")
	clients := fs.String("clients", "10,100,1000", "connected proxies per round")
	protocols := fs.String("protocols", "sotw,delta", "ADS variants: sotw, delta, delta+vhds (Delta with on-demand virtual hosts)")
	genSizes := fs.String("generate", "100,1000,10000", "mesh sizes for the in-process generation benchmark; empty skips it")
	changes := fs.Int("changes", 20, "config changes timed per round")
	minChanges := fs.Int("min-changes", 0, "changes per round even past -budget (default 3 quick, 5 full)")
	fullUpTo := fs.Int("full-rounds-up-to", 100000, "rounds of at most this many services x proxies (and at most 1,000 services) always time -changes changes")
	epChanges := fs.Int("endpoint-changes", 20, "endpoint-only changes timed per round")
	warmup := fs.Int("warmup-changes", 2, "uncounted config changes before the timed ones (the simulated proxies' shared buffer pools grow in the second change after the initial sync)")
	budget := fs.Duration("budget", 0, "time after which a round stops adding config changes (default 20s quick, 5m full; endpoint changes get twice as long)")
	timeout := fs.Duration("timeout", 10*time.Minute, "limit for one wait (initial sync or one change)")
	out := fs.String("out", "bench/results", "directory for the .md and .json results")
	name := fs.String("name", "", "result file name without extension (default controlplane-quick or controlplane-full)")
	verbose := fs.Bool("v", false, "log every change")
	mastdLog := fs.String("mastd-log", "warn", "mastd's log level (its log goes to stderr)")
	profileDir := fs.String("profile-dir", "", "write mastd's CPU profiles of each round's config changes and endpoint changes (one file each) and heap profiles here")
	noCache := fs.Bool("disable-xds-cache", false, "run mastd without its xDS cache (the old behaviour, for comparison)")
	noIdleGC := fs.Bool("no-idle-gc", false, "run mastd without its garbage collection between pushes (the Go runtime alone decides, for comparison)")
	peers := fs.String("peers", "mast", "control planes to run, in turn, with the same scenarios: mast, istiod (Istio's pilot-discovery from $ISTIOD or ~/.cache/mast/istiod-build, reading the same files; it has no on-demand routes, so delta+vhds rounds are mastd's only)")
	keepalive := fs.Duration("keepalive-timeout", 0, "mastd's keepalive ping timeout (0: its default, 10s); the simulated proxies share one process, which on a loaded machine can answer pings late")
	writeBuffer := fs.Int("mastd-write-buffer", 0, "diagnostic: mastd's --xds-write-buffer (0: its default)")
	gcPercent := fs.Int("mastd-gc-percent", 0, "mastd's --gc-percent (0: its default)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *quick && *full {
		fmt.Fprintln(stderr, "cpbench: -quick and -full exclude each other")
		return 2
	}
	mode := "quick"
	if *full {
		mode = "full"
	}
	if *budget == 0 {
		*budget = 20 * time.Second
		if *full {
			*budget = 5 * time.Minute
		}
	}
	if *minChanges == 0 {
		*minChanges = 3
		if *full {
			*minChanges = 5
		}
	}
	if *name == "" {
		*name = "controlplane-" + mode
	}
	svcList, err := ints(*services)
	if err != nil {
		fmt.Fprintln(stderr, "cpbench: -services:", err)
		return 2
	}
	clientList, err := ints(*clients)
	if err != nil {
		fmt.Fprintln(stderr, "cpbench: -clients:", err)
		return 2
	}
	genList, err := ints(*genSizes)
	if err != nil {
		fmt.Fprintln(stderr, "cpbench: -generate:", err)
		return 2
	}
	var protos []cpb.Protocol
	for _, p := range strings.Split(*protocols, ",") {
		switch cpb.Protocol(p) {
		case cpb.SotW, cpb.Delta, cpb.DeltaVHDS:
			protos = append(protos, cpb.Protocol(p))
		default:
			fmt.Fprintf(stderr, "cpbench: -protocols: %q is not sotw, delta or delta+vhds\n", p)
			return 2
		}
	}
	var peerList []string
	for _, p := range strings.Split(*peers, ",") {
		switch p = strings.TrimSpace(p); p {
		case "mast", "istiod":
			peerList = append(peerList, p)
		default:
			fmt.Fprintf(stderr, "cpbench: -peers: %q is not mast or istiod\n", p)
			return 2
		}
	}
	var istiod string
	if slices.Contains(peerList, "istiod") {
		if istiod, err = cpb.IstiodPath(); err != nil {
			fmt.Fprintln(stderr, "cpbench:", err)
			return 1
		}
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "cpbench:", err)
		return 1
	}
	if *profileDir != "" {
		if *profileDir, err = filepath.Abs(*profileDir); err == nil {
			err = os.MkdirAll(*profileDir, 0o755)
		}
		if err != nil {
			fmt.Fprintln(stderr, "cpbench:", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}

	rep := cpb.Report{Machine: cpb.DescribeMachine(), Mode: mode, Command: "go run ./bench/controlplane/cmd/cpbench " + strings.Join(args, " "), Started: time.Now().UTC()}
	for _, n := range genList {
		logf("generate: %d services", n)
		g, err := cpb.BenchmarkGenerate(n)
		if err != nil {
			fmt.Fprintln(stderr, "cpbench: generate:", err)
			return 1
		}
		rep.Generate = append(rep.Generate, g)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "cpbench:", err)
		return 1
	}
	startMastd := func(dir string) (cpb.Server, time.Duration, error) {
		var extra []string
		if *noCache {
			extra = append(extra, "-disable-xds-cache")
		}
		if *keepalive > 0 {
			extra = append(extra, "-keepalive-timeout", keepalive.String())
		}
		if *writeBuffer > 0 {
			extra = append(extra, "-write-buffer", fmt.Sprint(*writeBuffer))
		}
		if *noIdleGC {
			extra = append(extra, "-no-idle-gc")
		}
		if *gcPercent > 0 {
			extra = append(extra, "-gc-percent", fmt.Sprint(*gcPercent))
		}
		c, err := cpb.StartChild(exe, dir, *mastdLog, extra...)
		if err != nil {
			return nil, 0, err
		}
		return c, c.Startup, nil
	}
	startIstiod := func(dir string) (cpb.Server, time.Duration, error) {
		log, err := os.Create(filepath.Join(*out, *name+"-istiod.log"))
		if err != nil {
			return nil, 0, err
		}
		i, err := cpb.StartIstiod(istiod, dir, *keepalive, log)
		if err != nil {
			log.Close()
			return nil, 0, err
		}
		return i, i.Startup, nil
	}
sizes:
	for _, n := range svcList {
		for _, peer := range peerList {
			start := startMastd
			if peer == "istiod" {
				start = startIstiod
			}
			rs, err := cpb.RunScenarios(ctx, cpb.ScenarioConfig{
				Peer:     peer,
				Services: n, Clients: clientList, Protocols: protos,
				Changes: *changes, MinChanges: *minChanges,
				FullRound: func(services, clients int) bool { return services <= 1000 && services*clients <= *fullUpTo }, EndpointChanges: *epChanges, WarmupChanges: *warmup, RoundBudget: *budget,
				Timeout: *timeout, ProfileDir: *profileDir, Logf: logf, Verbose: *verbose,
				Start: start,
				Skip: func(services, clients int, p cpb.Protocol) bool {
					return (!*full && services >= 10000 && clients >= 1000) || (peer == "istiod" && p == cpb.DeltaVHDS)
				},
			})
			rep.Rounds = append(rep.Rounds, rs...)
			if err != nil {
				fmt.Fprintf(stderr, "cpbench: %s, %d services: %v\n", peer, n, err)
				if ctx.Err() != nil {
					break sizes
				}
			}
		}
	}
	rep.ComputeMarginal()
	rep.Elapsed = time.Since(rep.Started).Round(time.Second).String()
	md := rep.Markdown()
	fmt.Fprint(stdout, md)
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, *name+".json"), append(js, '\n'), 0o644); err != nil {
		fmt.Fprintln(stderr, "cpbench:", err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(*out, *name+".md"), []byte(md), 0o644); err != nil {
		fmt.Fprintln(stderr, "cpbench:", err)
		return 1
	}
	return 0
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
