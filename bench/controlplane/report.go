package controlplane

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/config/store"
	mastd "github.com/mast-mesh/mast/internal/controlplane"
)

// Machine describes where the figures were measured.
type Machine struct {
	NumCPU     int    `json:"nproc"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Commit     string `json:"commit,omitempty"`
}

// DescribeMachine reads the CPU model from /proc/cpuinfo and the commit from git.
func DescribeMachine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(b))
	}
	return m
}

// Report is everything cpbench measured.
type Report struct {
	Machine  Machine          `json:"machine"`
	Mode     string           `json:"mode"`
	Command  string           `json:"command"`
	Started  time.Time        `json:"started"`
	Elapsed  string           `json:"elapsed"`
	Generate []GenerateResult `json:"generate"`
	Rounds   []RoundResult    `json:"rounds"`
	// Marginal is mastd's heap per additional connected proxy, from the
	// rounds with the fewest and the most proxies of each mesh size and
	// protocol; it excludes one-off costs such as the push context's memo.
	Marginal []MarginalMemory `json:"marginal_memory"`
}

// MarginalMemory is the heap and RSS slope between two rounds.
type MarginalMemory struct {
	Services     int      `json:"services"`
	Protocol     Protocol `json:"protocol"`
	FromClients  int      `json:"from_clients"`
	ToClients    int      `json:"to_clients"`
	HeapPerProxy float64  `json:"heap_inuse_per_proxy"`
	RSSPerProxy  float64  `json:"rss_per_proxy"`
}

// ComputeMarginal fills r.Marginal from r.Rounds.
func (r *Report) ComputeMarginal() {
	r.Marginal = nil
	type key struct {
		services int
		p        Protocol
	}
	lo, hi := map[key]RoundResult{}, map[key]RoundResult{}
	var order []key
	for _, x := range r.Rounds {
		if x.MemConnected.HeapInuse == 0 || x.Peer == "istiod" {
			continue
		}
		k := key{x.Services, x.Protocol}
		if l, ok := lo[k]; !ok {
			order = append(order, k)
			lo[k], hi[k] = x, x
		} else {
			if x.Clients < l.Clients {
				lo[k] = x
			}
			if x.Clients > hi[k].Clients {
				hi[k] = x
			}
		}
	}
	for _, k := range order {
		a, b := lo[k], hi[k]
		if a.Clients == b.Clients {
			continue
		}
		n := float64(b.Clients - a.Clients)
		r.Marginal = append(r.Marginal, MarginalMemory{
			Services: k.services, Protocol: k.p, FromClients: a.Clients, ToClients: b.Clients,
			HeapPerProxy: (float64(b.MemConnected.HeapInuse) - float64(a.MemConnected.HeapInuse)) / n,
			RSSPerProxy:  (float64(b.MemConnected.RSS) - float64(a.MemConnected.RSS)) / n,
		})
	}
}

func msf(ns int64) string { return fmt.Sprintf("%.2f", float64(ns)/1e6) }

func kb(b float64) string { return fmt.Sprintf("%.0f", b/1024) }

func mb(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// Markdown renders the report.
func (r Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Control plane (Pilot) benchmark, %s mode\n\n", r.Mode)
	w("Machine: %d CPUs (GOMAXPROCS %d), %s, %s, %s, commit %s. Started %s, took %s.\n\n",
		r.Machine.NumCPU, r.Machine.GOMAXPROCS, r.Machine.CPUModel, r.Machine.GoVersion, r.Machine.OS, r.Machine.Commit, r.Started.Format(time.RFC3339), r.Elapsed)
	w("Command: `%s`\n\n", r.Command)
	if len(r.Generate) > 0 {
		w("## Generating one sidecar's full configuration (generate.Generate, LDS+RDS+CDS+EDS)\n\n")
		w("In process, mesh loaded from the same YAML through config.Load, serviceentry.Build and model.NewPushContext. ")
		w("\"warm\" reuses a push context whose per-push memo is filled (every proxy after the first); \"cold\" is the first proxy of a push. ")
		w("Config bytes are the four SotW DiscoveryResponses' proto size (the gRPC payload).\n\n")
		w("| services | endpoints | warm ms | cold ms | allocs/op | alloc MB/op | cds / eds / lds / rds ms | config KB (cds / eds / lds / rds) | NewPushContext ms |\n")
		w("|---:|---:|---:|---:|---:|---:|---|---|---:|\n")
		for _, g := range r.Generate {
			w("| %d | %d | %s | %s | %d | %.1f | %s / %s / %s / %s | %s (%s / %s / %s / %s) | %s |\n",
				g.Services, g.Endpoints, msf(g.NsPerOp), msf(g.ColdNsPerOp), g.AllocsPerOp, float64(g.BytesPerOp)/(1<<20),
				msf(g.PerType["cds"]), msf(g.PerType["eds"]), msf(g.PerType["lds"]), msf(g.PerType["rds"]),
				kb(float64(g.ConfigBytes)), kb(float64(g.Config["cds"].WireBytes)), kb(float64(g.Config["eds"].WireBytes)), kb(float64(g.Config["lds"].WireBytes)), kb(float64(g.Config["rds"].WireBytes)),
				msf(g.PushContextNs))
		}
		w("\n")
	}
	if len(r.Rounds) > 0 {
		w("## Pushes from mastd to connected proxies\n\n")
		w("mastd (controlplane.Run, default 100 ms debounce) runs in a child process watching a directory of one YAML file per service ")
		w("(ServiceEntry + 5 WorkloadEntries). Each proxy is a real grpc-go ADS stream on loopback with its own connection and node ID; ")
		w("it subscribes to CDS and LDS (wildcard), then to the EDS clusters and RDS route configs they name, and ACKs every response. ")
		w("A *config change* rewrites a VirtualService file; an *endpoint change* rewrites one service file with a WorkloadEntry moved. ")
		w("Latency is from the file write (rename) to the ACK completing the last proxy (it includes the file watcher's %d ms ", store.DefaultDebounce.Milliseconds())
		w("and the push debounce's 100 ms quiet periods); fan-out is from the first response of the new version at any proxy to that last ACK. ")
		w("Each fleet's config changes follow uncounted warm-up changes (-warmup-changes: the simulated proxies share one heap, whose grpc-go buffer pools grow in the second change after the initial sync; the slowest one's time is in the JSON as config_warmup_ms). Each counted change's time to the last ACK is in the JSON (to_last_ack_each_ms). ")
		w("Bytes are DiscoveryResponse proto bytes per proxy per change. Heap/proxy is (heap in use after GC with the fleet connected ")
		w("minus before) / proxies; the proxies run in the benchmark process, not in mastd. p99 is nearest-rank: with n < 100 it is the maximum. ")
		w("mastd CPU is its process's user + system time per change (from getrusage), which depends little on the machine's other load; ")
		w("mastd wait is how long its threads were runnable but waiting for a CPU per change (schedstat), the machine's share of the latency; ")
		w("clients CPU is the benchmark process's (the simulated proxies') CPU time per change, which competes with mastd for the same cores.\n\n")
		w("| services | proxies | ADS | mastd start ms | initial sync ms | initial KB/proxy | config change p50 / p99 ms (n) | fan-out p50 / p99 ms | config change KB/proxy (types) | mastd CPU ms/config change | mastd wait / clients CPU ms/config change | endpoint change p50 / p99 ms (n) | endpoint change B/proxy (types) | mastd CPU ms/endpoint change | heap idle → connected MB | heap KB/proxy | RSS KB/proxy | peak RSS MB |\n")
		w("|---:|---:|---|---:|---:|---:|---|---|---|---:|---|---|---|---:|---|---:|---:|---:|\n")
		for _, x := range r.Rounds {
			if x.Error != "" && x.Config.ToLastACK.N == 0 {
				w("| %d | %d | %s | %.0f | error: %s ||||||||||||||\n", x.Services, x.Clients, x.label(), x.StartupMs, strings.ReplaceAll(x.Error, "|", "/"))
				continue
			}
			w("| %d | %d | %s | %.0f | %.0f | %s | %.0f / %.0f (%d) | %.0f / %.0f | %s (%s) | %.0f | %.0f / %.0f | %.0f / %.0f (%d) | %.0f (%s) | %.0f | %s → %s | %s | %s | %s |\n",
				x.Services, x.Clients, x.label(), x.StartupMs, x.InitialSyncMs, kb(float64(x.InitialBytesPerProxy)),
				x.Config.ToLastACK.P50, x.Config.ToLastACK.P99, x.Config.ToLastACK.N, x.Config.Fanout.P50, x.Config.Fanout.P99,
				kb(x.Config.BytesPerProxy), strings.Join(x.Config.TypesSent, "+"), x.Config.MastdCPUMs, x.Config.MastdWaitMs, x.Config.ClientsCPUMs,
				x.Endpoint.ToLastACK.P50, x.Endpoint.ToLastACK.P99, x.Endpoint.ToLastACK.N, x.Endpoint.BytesPerProxy, strings.Join(x.Endpoint.TypesSent, "+"), x.Endpoint.MastdCPUMs,
				mb(x.MemIdle.HeapInuse), mb(x.MemConnected.HeapInuse), kb(x.HeapPerProxy), kb(x.RSSPerProxy), mb(x.MemConnected.PeakRSS))
			if x.Error != "" {
				w("| | | | | error: %s ||||||||||||||\n", strings.ReplaceAll(x.Error, "|", "/"))
			}
		}
		w("\n")
	}
	b.WriteString(r.peers())
	b.WriteString(r.targets())
	return b.String()
}

// label is the round's ADS variant, prefixed by its control plane unless it
// is mastd.
func (x RoundResult) label() string {
	if x.Peer == "" || x.Peer == "mast" {
		return string(x.Protocol)
	}
	return x.Peer + " " + string(x.Protocol)
}

// peers compares mastd with istiod round by round (same services, proxies
// and ADS variant, same run): istiod's figure divided by mastd's, so a
// ratio above 1 means mastd is faster or cheaper.
func (r Report) peers() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	ratio := func(istiod, mast float64) string {
		if mast <= 0 || istiod <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", istiod/mast)
	}
	for _, x := range r.Rounds {
		if x.Peer != "istiod" || x.Error != "" {
			continue
		}
		for _, m := range r.Rounds {
			if m.Peer != "mast" || m.Error != "" || m.Services != x.Services || m.Clients != x.Clients || m.Protocol != x.Protocol {
				continue
			}
			if b.Len() == 0 {
				w("## Mast against istiod (same run; istiod / mastd, above 1: mastd faster or cheaper)\n\n")
				w("| services | proxies | ADS | initial sync | config change p50 | config change p99 | CPU/config change | endpoint change p50 | endpoint change p99 | CPU/endpoint change | heap/proxy |\n")
				w("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			}
			w("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", x.Services, x.Clients, x.Protocol,
				ratio(x.InitialSyncMs, m.InitialSyncMs), ratio(x.Config.ToLastACK.P50, m.Config.ToLastACK.P50), ratio(x.Config.ToLastACK.P99, m.Config.ToLastACK.P99),
				ratio(x.Config.MastdCPUMs, m.Config.MastdCPUMs), ratio(x.Endpoint.ToLastACK.P50, m.Endpoint.ToLastACK.P50), ratio(x.Endpoint.ToLastACK.P99, m.Endpoint.ToLastACK.P99),
				ratio(x.Endpoint.MastdCPUMs, m.Endpoint.MastdCPUMs), ratio(x.HeapPerProxy, m.HeapPerProxy))
		}
	}
	if b.Len() > 0 {
		w("\nistiod's heap is read from its metrics without a forced GC, so its heap/proxy includes uncollected garbage; its CPU and run-queue wait come from /proc.\n\n")
	}
	return b.String()
}

// targets compares the headline figures with the control-plane issue's targets.
func (r Report) targets() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("## Against the targets\n\n")
	for _, g := range r.Generate {
		if g.Services == 1000 {
			w("- Full sidecar config, 1,000 services x 5 endpoints: %s ms warm, %s ms cold (target <= 20 ms); %d allocs, %.1f MB allocated; %s KB on the wire (SotW).\n",
				msf(g.NsPerOp), msf(g.ColdNsPerOp), g.AllocsPerOp, float64(g.BytesPerOp)/(1<<20), kb(float64(g.ConfigBytes)))
		}
	}
	window := store.DefaultDebounce + mastd.DefaultDebounceQuiet
	for _, x := range r.Rounds {
		if x.Services != 1000 || x.Error != "" || x.Peer == "istiod" {
			continue
		}
		if x.Config.ToLastACK.N > 0 {
			// The latency targets count from the end of the debounce
			// windows: every change waits them out before mastd may push.
			net := func(ms float64) float64 { return max(0, ms-float64(window.Milliseconds())) }
			target := "100"
			if x.Protocol == "sotw" {
				target = "300"
			}
			w("- 1,000 services, %d %s proxies, after the debounce windows (file watcher %d ms + push debounce %d ms, subtracted): config change p50 %.0f ms, p99 %.0f ms (target p99 <= %s ms); endpoint change p50 %.0f ms, p99 %.0f ms (target p99 <= 100 ms).\n",
				x.Clients, x.Protocol, store.DefaultDebounce.Milliseconds(), mastd.DefaultDebounceQuiet.Milliseconds(),
				net(x.Config.ToLastACK.P50), net(x.Config.ToLastACK.P99), target, net(x.Endpoint.ToLastACK.P50), net(x.Endpoint.ToLastACK.P99))
		}
		if x.Clients == 100 {
			w("- 1,000 services, 100 %s proxies: config change to last ACK p50 %.0f ms, p99 %.0f ms over %d changes (target p99 <= 200 ms); %s KB per proxy per change (%s); mastd CPU %.0f ms per change.\n",
				x.Protocol, x.Config.ToLastACK.P50, x.Config.ToLastACK.P99, x.Config.ToLastACK.N, kb(x.Config.BytesPerProxy), strings.Join(x.Config.TypesSent, "+"), x.Config.MastdCPUMs)
			w("  Endpoint-only change: p50 %.0f ms, p99 %.0f ms; types sent: %s; %.0f B per proxy.\n",
				x.Endpoint.ToLastACK.P50, x.Endpoint.ToLastACK.P99, strings.Join(x.Endpoint.TypesSent, "+"), x.Endpoint.BytesPerProxy)
		}
		w("- mastd memory, 1,000 services, %d %s proxies: heap %s → %s MB, %s KB per proxy (target <= 256 KB); RSS %s KB per proxy.\n",
			x.Clients, x.Protocol, mb(x.MemIdle.HeapInuse), mb(x.MemConnected.HeapInuse), kb(x.HeapPerProxy), kb(x.RSSPerProxy))
	}
	for _, m := range r.Marginal {
		w("- mastd memory per additional proxy, %d services, %s, %d → %d proxies: heap %s KB, RSS %s KB (target <= 256 KB).\n",
			m.Services, m.Protocol, m.FromClients, m.ToClients, kb(m.HeapPerProxy), kb(m.RSSPerProxy))
	}
	w("\n")
	return b.String()
}
