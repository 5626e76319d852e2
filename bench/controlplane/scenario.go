package controlplane

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mast-mesh/mast/internal/pilot/generate"
)

// ScenarioConfig configures the push scenarios for one mesh size: mastd
// watching a config directory of Services services, fleets of simulated
// proxies, config changes and endpoint-only changes written as files.
type ScenarioConfig struct {
	// Peer names the control plane Start starts ("" or "mast": mastd;
	// "istiod"), recorded in the results.
	Peer      string
	Services  int
	Clients   []int
	Protocols []Protocol
	// Changes is how many VirtualService changes to time per round; after
	// RoundBudget has passed, a round stops early once it has MinChanges,
	// unless FullRound says it must time all Changes.
	Changes, MinChanges int
	FullRound           func(services, clients int) bool
	EndpointChanges     int
	// WarmupChanges are config changes made before the counted ones, not
	// counted (scenario.round says why).
	WarmupChanges int
	RoundBudget   time.Duration
	// Timeout bounds each wait (initial sync, one change).
	Timeout time.Duration
	// Start starts mastd for a config directory.
	Start func(dir string) (Server, time.Duration, error)
	// Dir is where the config directory is created.
	Dir string
	// ProfileDir, when set, receives mastd's CPU profiles of each round's config
	// changes and of its endpoint changes (one file each), and heap profiles.
	ProfileDir string
	// Skip, when it returns true, skips that combination.
	Skip func(services, clients int, p Protocol) bool
	Logf func(format string, args ...any)
	// Verbose logs every change.
	Verbose bool
}

// Latency summarizes samples in milliseconds.
type Latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Summarize computes nearest-rank percentiles.
func Summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return ms(s[max(i, 0)])
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Latency{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }

// ChangeResult is a series of identical changes.
type ChangeResult struct {
	// ToLastACK is from the file write to the ACK completing the last proxy.
	ToLastACK Latency `json:"to_last_ack"`
	// Fanout is from the first response of the new version at any proxy to
	// the last ACK: the push itself, without the debounce windows.
	Fanout Latency `json:"fanout"`
	// ToLastACKMs is each change's ToLastACK in order, ms.
	ToLastACKMs []float64 `json:"to_last_ack_each_ms"`
	// PerProxy is what one proxy received per change, by type (averaged).
	PerProxy map[string]Avg `json:"per_proxy"`
	// BytesPerProxy is the sum over types.
	BytesPerProxy float64 `json:"bytes_per_proxy"`
	// TypesSent lists the types any proxy received.
	TypesSent []string `json:"types_sent"`
	// MastdCPUMs is mastd's CPU time (user + system) per change, settle time
	// included: unlike latency, it hardly depends on what else the machine runs.
	MastdCPUMs float64 `json:"mastd_cpu_ms_per_change"`
	// MastdWaitMs is how long mastd's threads were runnable but waiting for
	// a CPU, per change: the machine's share of the latency.
	MastdWaitMs float64 `json:"mastd_run_queue_wait_ms_per_change"`
	// ClientsCPUMs is the benchmark process's CPU time per change: the
	// simulated proxies receiving, decoding and ACKing (with an in-process
	// mastd, mastd as well).
	ClientsCPUMs float64 `json:"clients_cpu_ms_per_change"`
}

// Avg is responses and bytes per proxy per change.
type Avg struct {
	Responses float64 `json:"responses"`
	Bytes     float64 `json:"bytes"`
}

// RoundResult is one (services, clients, protocol) combination.
type RoundResult struct {
	// Peer is the control plane: "mast" (mastd) or "istiod".
	Peer      string   `json:"peer,omitempty"`
	Services  int      `json:"services"`
	Endpoints int      `json:"endpoints"`
	Clients   int      `json:"clients"`
	Protocol  Protocol `json:"protocol"`
	// StartupMs: mastd from exec to serving (config load, first push context).
	StartupMs float64 `json:"mastd_startup_ms"`
	// InitialSyncMs: connecting the fleet (Parallel at a time) until every
	// proxy has ACKed all four types.
	InitialSyncMs float64 `json:"initial_sync_ms"`
	// InitialBytesPerProxy: bytes a proxy received until it had its full config.
	InitialBytesPerProxy int64    `json:"initial_bytes_per_proxy"`
	MemIdle              MemStats `json:"mem_idle"`
	MemConnected         MemStats `json:"mem_connected"`
	HeapPerProxy         float64  `json:"heap_inuse_per_proxy"`
	RSSPerProxy          float64  `json:"rss_per_proxy"`
	// ConfigWarmupMs is the slowest uncounted warm-up config change's time
	// to the last ACK (scenario.round says why they are not counted).
	ConfigWarmupMs  float64      `json:"config_warmup_ms"`
	Config          ChangeResult `json:"config_change"`
	Endpoint        ChangeResult `json:"endpoint_change"`
	Profile         string       `json:"mastd_cpu_profile,omitempty"`          // the config changes'
	EndpointProfile string       `json:"mastd_endpoint_cpu_profile,omitempty"` // the endpoint changes'
	HeapProfile     string       `json:"mastd_heap_profile,omitempty"`
	Error           string       `json:"error,omitempty"`
}

// RunScenarios runs every combination for cfg.Services and returns one
// result per round; a failed round records its error and the others go on.
func RunScenarios(ctx context.Context, cfg ScenarioConfig) ([]RoundResult, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp(cfg.Dir, fmt.Sprintf("mesh-%d-", cfg.Services))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := (Mesh{Services: cfg.Services}).Write(dir); err != nil {
		return nil, err
	}
	srv, startup, err := cfg.Start(dir)
	if err != nil {
		return nil, fmt.Errorf("%s for %d services: %w", cfg.peer(), cfg.Services, err)
	}
	defer srv.Close()
	logf("%s up with %d services in %v", cfg.peer(), cfg.Services, startup.Round(time.Millisecond))
	sc := &scenario{cfg: cfg, dir: dir, srv: srv, logf: logf}
	var out []RoundResult
	for _, n := range cfg.Clients {
		for _, p := range cfg.Protocols {
			if cfg.Skip != nil && cfg.Skip(cfg.Services, n, p) {
				logf("skip %d services x %d %s clients", cfg.Services, n, p)
				continue
			}
			r := RoundResult{Peer: cfg.Peer, Services: cfg.Services, Endpoints: cfg.Services * EndpointsPerService, Clients: n, Protocol: p, StartupMs: ms(startup)}
			if err := sc.round(ctx, &r); err != nil {
				r.Error = err.Error()
				logf("round %d services x %d %s: %v", cfg.Services, n, p, err)
			}
			out = append(out, r)
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
		}
	}
	return out, nil
}

func (cfg ScenarioConfig) peer() string {
	if cfg.Peer == "" {
		return "mastd"
	}
	return cfg.Peer
}

type scenario struct {
	cfg        ScenarioConfig
	dir        string
	srv        Server
	logf       func(string, ...any)
	generation int  // of the VirtualService
	moved      bool // whether endpoint 4 of service 0 has its alternative address
}

func (s *scenario) round(ctx context.Context, r *RoundResult) error {
	time.Sleep(300 * time.Millisecond) // let the previous fleet's streams wind down
	var err error
	if r.MemIdle, err = s.srv.Mem(); err != nil {
		return err
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	fc := FleetConfig{Addr: s.srv.XDSAddr(), Protocol: r.Protocol, Clients: r.Clients, Services: s.cfg.Services}
	if r.Protocol == DeltaVHDS {
		fc.Protocol, fc.OnDemand = Delta, true
	}
	f, err := Connect(cctx, fc)
	cancel()
	if err != nil {
		return err
	}
	defer f.Close()
	r.InitialSyncMs = ms(time.Since(start))
	for _, c := range f.Totals() {
		r.InitialBytesPerProxy += c.Bytes
	}
	r.InitialBytesPerProxy /= int64(r.Clients)
	if r.MemConnected, err = s.srv.Mem(); err != nil {
		return err
	}
	r.HeapPerProxy = (float64(r.MemConnected.HeapInuse) - float64(r.MemIdle.HeapInuse)) / float64(r.Clients)
	r.RSSPerProxy = (float64(r.MemConnected.RSS) - float64(r.MemIdle.RSS)) / float64(r.Clients)
	s.logf("%d services x %d %s: synced in %.0f ms, %d B/proxy, heap +%.0f KB/proxy", r.Services, r.Clients, r.Protocol, r.InitialSyncMs, r.InitialBytesPerProxy, r.HeapPerProxy/1024)

	// Config changes that are not counted. The simulated proxies share one
	// process and one heap: at 1,000 SotW proxies the second change after
	// the initial sync (the first one after one warm-up change too) has
	// grpc-go's receive path take ~6,000 more 16 KiB DATA-frame buffers
	// than its pool held (~6 per proxy, ~100 MB in all), which starts a GC
	// of the ~250 MB heap on the cores mastd uses; a fleet of separate
	// proxies would each allocate its ~100 KB once (bench/README.md
	// idlegc-w16). The slowest one's time is reported on its own.
	if s.cfg.WarmupChanges > 0 {
		warm, err := s.series(ctx, f, r.Clients, s.configWant(fc), 50*time.Millisecond, func(i int) bool { return i < s.cfg.WarmupChanges }, s.configChange)
		if err != nil {
			return fmt.Errorf("warm-up config change: %w", err)
		}
		r.ConfigWarmupMs = warm.ToLastACK.Max
		s.logf("  %d warm-up config changes (not counted): slowest last ACK %.0f ms, clients CPU %.0f ms/change", s.cfg.WarmupChanges, r.ConfigWarmupMs, warm.ClientsCPUMs)
	}

	if s.cfg.ProfileDir != "" {
		r.HeapProfile = filepath.Join(s.cfg.ProfileDir, fmt.Sprintf("mastd-heap-%d-%d-%s.pprof", r.Services, r.Clients, r.Protocol))
		if err := s.srv.WriteHeapProfile(r.HeapProfile); err != nil {
			r.HeapProfile = ""
			s.logf("no mastd heap profile: %v", err)
		}
		r.Profile = s.startProfile(r, "config")
		defer s.srv.StopCPUProfile()
	}

	// Config changes (configWant says what each must bring).
	roundStart := time.Now()
	minChanges := s.cfg.MinChanges
	if s.cfg.FullRound != nil && s.cfg.FullRound(r.Services, r.Clients) {
		minChanges = s.cfg.Changes
	}
	r.Config, err = s.series(ctx, f, r.Clients, s.configWant(fc), 50*time.Millisecond, func(i int) bool {
		return i < s.cfg.Changes && (i < minChanges || time.Since(roundStart) < s.cfg.RoundBudget)
	}, s.configChange)
	if err != nil {
		return fmt.Errorf("config change: %w", err)
	}
	s.heapProfile(r, "after-config")
	if r.Profile != "" {
		// A profile of each series: an endpoint change costs mastd a
		// tenth of a config change and would not show in a profile of both.
		if err := s.srv.StopCPUProfile(); err != nil {
			s.logf("mastd profile: %v", err)
		}
		r.EndpointProfile = s.startProfile(r, "endpoint")
	}
	s.logf("  config change: p50 %.0f ms p99 %.0f ms (n=%d), fan-out p50 %.0f ms, %.0f B/proxy %v, mastd CPU %.0f ms/change (run-queue wait %.0f ms), clients CPU %.0f ms/change",
		r.Config.ToLastACK.P50, r.Config.ToLastACK.P99, r.Config.ToLastACK.N, r.Config.Fanout.P50, r.Config.BytesPerProxy, r.Config.TypesSent, r.Config.MastdCPUMs, r.Config.MastdWaitMs, r.Config.ClientsCPUMs)

	// Endpoint-only changes: moving one WorkloadEntry must push EDS only.
	// The settle time lets a wrongly sent LDS/RDS (pushed after EDS) show.
	r.Endpoint, err = s.series(ctx, f, r.Clients, []string{generate.EndpointType}, 250*time.Millisecond, func(i int) bool {
		return i < s.cfg.EndpointChanges && (i < max(minChanges, 5) || time.Since(roundStart) < 2*s.cfg.RoundBudget)
	}, func() ([]byte, func() error) {
		s.moved = !s.moved
		alt := -1
		if s.moved {
			alt = EndpointsPerService - 1
		}
		return EndpointMarker(s.moved), func() error { return WriteFileAtomic(ServiceFile(s.dir, 0), ServiceYAML(0, alt)) }
	})
	if err != nil {
		return fmt.Errorf("endpoint change: %w", err)
	}
	s.heapProfile(r, "after-endpoint")
	s.logf("  endpoint change: p50 %.0f ms p99 %.0f ms (n=%d), %.0f B/proxy %v, mastd CPU %.0f ms/change (run-queue wait %.0f ms), clients CPU %.0f ms/change",
		r.Endpoint.ToLastACK.P50, r.Endpoint.ToLastACK.P99, r.Endpoint.ToLastACK.N, r.Endpoint.BytesPerProxy, r.Endpoint.TypesSent, r.Endpoint.MastdCPUMs, r.Endpoint.MastdWaitMs, r.Endpoint.ClientsCPUMs)
	return nil
}

// configWant is what a config change must bring every proxy. A
// VirtualService edit alters routes only. mastd pushes no other type for it
// (with -disable-xds-cache as well: the push is limited by kind either way),
// so every proxy is complete once it has ACKed new routes; on-demand proxies
// hold the changed service's virtual host, not a route configuration with
// every virtual host: that is what changes.
func (s *scenario) configWant(fc FleetConfig) []string {
	if fc.OnDemand {
		return []string{generate.VirtualHostType}
	}
	return []string{generate.RouteType}
}

// configChange is the next VirtualService edit: its marker and its write.
func (s *scenario) configChange() ([]byte, func() error) {
	s.generation++
	gen := s.generation
	return ConfigMarker(gen), func() error { return WriteFileAtomic(VirtualServiceFile(s.dir), RoutingYAML(gen)) }
}

// startProfile starts mastd's CPU profile of a series of changes and
// returns its path, or "" when mastd cannot be profiled.
func (s *scenario) startProfile(r *RoundResult, series string) string {
	path := filepath.Join(s.cfg.ProfileDir, fmt.Sprintf("mastd-%d-%d-%s-%s.pprof", r.Services, r.Clients, r.Protocol, series))
	if err := s.srv.StartCPUProfile(path); err != nil {
		s.logf("no mastd profile: %v", err)
		return ""
	}
	return path
}

// heapProfile writes mastd's heap profile after a series of changes, with
// -profile-dir: its allocations less those of the profile written before
// (pprof -sample_index=alloc_space -diff_base) are the series'.
func (s *scenario) heapProfile(r *RoundResult, stage string) {
	if s.cfg.ProfileDir == "" {
		return
	}
	path := filepath.Join(s.cfg.ProfileDir, fmt.Sprintf("mastd-heap-%d-%d-%s-%s.pprof", r.Services, r.Clients, r.Protocol, stage))
	if err := s.srv.WriteHeapProfile(path); err != nil {
		s.logf("no mastd heap profile %s: %v", stage, err)
	}
}

// series applies changes while more(i) and times each until every proxy
// has ACKed a new version of the want types.
func (s *scenario) series(ctx context.Context, f *Fleet, clients int, want []string, settle time.Duration, more func(int) bool, change func() (marker []byte, write func() error)) (ChangeResult, error) {
	var res ChangeResult
	var lat, fan []time.Duration
	before := f.Totals()
	cpu0, err := s.srv.CPU()
	if err != nil {
		return res, err
	}
	own0 := readCPU()
	for i := 0; more(i); i++ {
		marker, write := change()
		e := f.ExpectMarker(marker, want...)
		var changeMastd, changeOwn CPUTime // -v: this change's
		if s.cfg.Verbose {
			if changeMastd, err = s.srv.CPU(); err != nil {
				return res, err
			}
			changeOwn = readCPU()
		}
		t0 := time.Now()
		if err := write(); err != nil {
			return res, err
		}
		wctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		tm, err := e.Wait(wctx)
		cancel()
		if err != nil {
			return res, fmt.Errorf("change %d: %w", i, err)
		}
		if s.cfg.Verbose {
			ownEnd := readCPU()
			mastdEnd, err := s.srv.CPU()
			if err != nil {
				return res, err
			}
			s.logf("    change %d written at %s: first response +%v, last ACK +%v; mastd %s; clients %s", i, t0.Format("15:04:05.000"),
				tm.FirstResponse.Sub(t0).Round(time.Millisecond), tm.LastACK.Sub(t0).Round(time.Millisecond), cpuDelta(changeMastd, mastdEnd), cpuDelta(changeOwn, ownEnd))
		}
		lat = append(lat, tm.LastACK.Sub(t0))
		res.ToLastACKMs = append(res.ToLastACKMs, math.Round(float64(tm.LastACK.Sub(t0).Microseconds())/100)/10)
		fan = append(fan, tm.LastACK.Sub(tm.FirstResponse))
		time.Sleep(settle)
	}
	after := f.Totals()
	cpu1, err := s.srv.CPU()
	if err != nil {
		return res, err
	}
	own1 := readCPU()
	res.ToLastACK, res.Fanout = Summarize(lat), Summarize(fan)
	if n := float64(len(lat)); n > 0 {
		res.MastdCPUMs = math.Round((cpu1.Ms-cpu0.Ms)/n*10) / 10
		res.MastdWaitMs = math.Round((cpu1.WaitMs-cpu0.WaitMs)/n*10) / 10
		res.ClientsCPUMs = math.Round((own1.Ms-own0.Ms)/n*10) / 10
	}
	res.PerProxy = map[string]Avg{}
	n := float64(len(lat) * clients)
	if n == 0 {
		return res, nil
	}
	for _, t := range CountedTypes {
		k := ShortType(t)
		d := Counter{Responses: after[k].Responses - before[k].Responses, Bytes: after[k].Bytes - before[k].Bytes}
		if d.Responses > 0 {
			res.TypesSent = append(res.TypesSent, k)
		}
		pp := Avg{Responses: float64(d.Responses) / n, Bytes: math.Round(float64(d.Bytes) / n)}
		res.PerProxy[k] = pp
		res.BytesPerProxy += pp.Bytes
	}
	return res, nil
}
