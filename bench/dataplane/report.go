package dataplane

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Machine describes where the figures were measured.
type Machine struct {
	NumCPU    int     `json:"nproc"`
	CPUModel  string  `json:"cpu_model"`
	MemoryMB  int     `json:"memory_mb"`
	Kernel    string  `json:"kernel"`
	GoVersion string  `json:"go_version"`
	OS        string  `json:"os"`
	Commit    string  `json:"commit,omitempty"`
	LoadAvg   float64 `json:"loadavg_1m_at_start"` // other work on a shared machine
}

// DescribeMachine reads the CPU model, memory, kernel and load from /proc
// and the commit from git.
func DescribeMachine(repoDir string) Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscanf(string(b), "%f", &m.LoadAvg)
	}
	if b, err := exec.Command("git", "-C", repoDir, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(b))
	}
	return m
}

// Settings are the load parameters of a report.
type Settings struct {
	QPS               int     `json:"fixed_qps"`
	Conns             int     `json:"connections"`
	BodySize          int     `json:"body_bytes"`
	Repeats           int     `json:"repeats"`
	FixedSeconds      float64 `json:"fixed_seconds"`
	SaturationSeconds float64 `json:"saturation_seconds"`
	MeshServices      int     `json:"mesh_services"`
	Uniform           bool    `json:"uniform,omitempty"` // fortio -uniform at the fixed rate
}

// RunResult is one load run.
type RunResult struct {
	Repeat     int                `json:"repeat"`
	Protocol   Protocol           `json:"protocol"`
	Path       string             `json:"path"`
	Kind       string             `json:"kind"` // "fixed" or "saturation"
	Result     LoadResult         `json:"result"`
	CPUPer1000 map[string]float64 `json:"cpu_s_per_1000_requests"` // by proxy process
	// SysCPUPer1000 is the part of CPUPer1000 spent in the kernel.
	SysCPUPer1000 map[string]float64 `json:"sys_cpu_s_per_1000_requests,omitempty"`
	// Scheduling per request by proxy process (schedstat): µs its threads
	// waited on a run queue while runnable, and times they were put on a CPU.
	WaitUsPerReq map[string]float64 `json:"run_queue_wait_us_per_request,omitempty"`
	SlicesPerReq map[string]float64 `json:"scheduled_per_request,omitempty"`
	// SyscallsPerReq are system calls per request by proxy process, by
	// SyscallEvents name (perf; fixed-rate runs only).
	SyscallsPerReq map[string]map[string]float64 `json:"syscalls_per_request,omitempty"`
	// GoRuntime are a Mast sidecar's GoRuntimeFigures by process.
	GoRuntime map[string]map[string]float64 `json:"go_runtime,omitempty"`
	PeakRSS   map[string]uint64             `json:"peak_rss_bytes"`
	Err       string                        `json:"error,omitempty"`
}

// Memory is one proxy process's resident memory.
type Memory struct {
	Peer    Peer   `json:"peer"`
	Hop     int    `json:"hop"`
	IdleRSS uint64 `json:"idle_rss_bytes"`
	LoadRSS uint64 `json:"load_peak_rss_bytes"`
	MeshRSS uint64 `json:"mesh_rss_bytes,omitempty"` // hop 1 only: one instance holding the mesh
}

// Stat is the median and range of one figure over repeats.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func stat(vs []float64) Stat {
	if len(vs) == 0 {
		return Stat{}
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Summary is one protocol and path over all repeats.
type Summary struct {
	Protocol Protocol `json:"protocol"`
	Path     string   `json:"path"`
	// Latency at the fixed rate, ms: absolute, and the median's excess over
	// direct's median (Added).
	P50, P90, P99, P999 Stat            `json:"-"`
	Latency             []Stat          `json:"latency_ms"` // p50, p90, p99, p99.9
	Added               []float64       `json:"added_ms"`   // p50, p90, p99, p99.9 over direct
	MaxQPS              Stat            `json:"saturation_qps"`
	CPUPer1000          map[string]Stat `json:"cpu_s_per_1000_requests"`
	CPUPer1000Total     Stat            `json:"cpu_s_per_1000_requests_all_hops"`
	SysCPUPer1000       map[string]Stat `json:"sys_cpu_s_per_1000_requests,omitempty"`
	WaitUsPerReq        map[string]Stat `json:"run_queue_wait_us_per_request,omitempty"`
	SlicesPerReq        map[string]Stat `json:"scheduled_per_request,omitempty"`
	// Syscalls are system calls per request by process, by SyscallEvents
	// name.
	Syscalls map[string]map[string]Stat `json:"syscalls_per_request,omitempty"`
	// GoRuntime are Mast's GoRuntimeFigures by process.
	GoRuntime   map[string]map[string]Stat `json:"go_runtime,omitempty"`
	Errors      []string                   `json:"errors,omitempty"`
	Unavailable string                     `json:"unavailable,omitempty"`
}

// Report is everything dpbench measured.
type Report struct {
	Machine   Machine           `json:"machine"`
	Mode      string            `json:"mode"`
	Command   string            `json:"command"`
	Started   time.Time         `json:"started"`
	Elapsed   string            `json:"elapsed"`
	Versions  map[string]string `json:"versions"`
	Pinning   Pinning           `json:"pinning"`
	Settings  Settings          `json:"settings"`
	Summaries []*Summary        `json:"summaries"`
	Memory    []*Memory         `json:"memory"`
	Notes     []string          `json:"notes,omitempty"`
	Runs      []RunResult       `json:"runs"`
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) memory(p Peer, hop int) *Memory {
	for _, m := range r.Memory {
		if m.Peer == p && m.Hop == hop {
			return m
		}
	}
	m := &Memory{Peer: p, Hop: hop}
	r.Memory = append(r.Memory, m)
	return m
}

func (r *Report) summary(proto Protocol, path string) *Summary {
	for _, s := range r.Summaries {
		if s.Protocol == proto && s.Path == path {
			return s
		}
	}
	s := &Summary{Protocol: proto, Path: path, CPUPer1000: map[string]Stat{},
		WaitUsPerReq: map[string]Stat{}, SlicesPerReq: map[string]Stat{}}
	r.Summaries = append(r.Summaries, s)
	return s
}

func (r *Report) unavailable(proto Protocol, path Path, why string) {
	r.summary(proto, path.Name()).Unavailable = why
}

// Summarize computes the summaries from the runs. A run with an error does
// not count towards the figures; its error is listed.
func (r *Report) Summarize() {
	type key struct {
		proto Protocol
		path  string
	}
	type acc struct {
		p50, p90, p99, p999, qps, cpuTotal []float64
		cpu, sys, wait, slices             map[string][]float64
		sysc, gort                         map[string]map[string][]float64
	}
	accs := map[key]*acc{}
	for _, run := range r.Runs {
		s := r.summary(run.Protocol, run.Path)
		if run.Err != "" {
			s.Errors = append(s.Errors, fmt.Sprintf("repeat %d %s: %s", run.Repeat, run.Kind, run.Err))
			continue
		}
		k := key{run.Protocol, run.Path}
		a := accs[k]
		if a == nil {
			a = &acc{cpu: map[string][]float64{}, sys: map[string][]float64{}, wait: map[string][]float64{}, slices: map[string][]float64{}, sysc: map[string]map[string][]float64{}, gort: map[string]map[string][]float64{}}
			accs[k] = a
		}
		if run.Kind == "saturation" {
			a.qps = append(a.qps, run.Result.QPS)
			continue
		}
		a.p50, a.p90 = append(a.p50, run.Result.P50), append(a.p90, run.Result.P90)
		a.p99, a.p999 = append(a.p99, run.Result.P99), append(a.p999, run.Result.P999)
		total := 0.0
		for name, v := range run.CPUPer1000 {
			a.cpu[name] = append(a.cpu[name], v)
			total += v
		}
		if len(run.CPUPer1000) > 0 {
			a.cpuTotal = append(a.cpuTotal, total)
		}
		for name, v := range run.SysCPUPer1000 {
			a.sys[name] = append(a.sys[name], v)
		}
		for name, v := range run.WaitUsPerReq {
			a.wait[name] = append(a.wait[name], v)
		}
		for name, v := range run.SlicesPerReq {
			a.slices[name] = append(a.slices[name], v)
		}
		for name, figs := range run.GoRuntime {
			if a.gort[name] == nil {
				a.gort[name] = map[string][]float64{}
			}
			for k, v := range figs {
				a.gort[name][k] = append(a.gort[name][k], v)
			}
		}
		for name, counts := range run.SyscallsPerReq {
			if a.sysc[name] == nil {
				a.sysc[name] = map[string][]float64{}
			}
			for k, v := range counts {
				a.sysc[name][k] = append(a.sysc[name][k], v)
			}
		}
	}
	for k, a := range accs {
		s := r.summary(k.proto, k.path)
		s.P50, s.P90, s.P99, s.P999 = stat(a.p50), stat(a.p90), stat(a.p99), stat(a.p999)
		s.Latency = []Stat{s.P50, s.P90, s.P99, s.P999}
		s.MaxQPS = stat(a.qps)
		for name, vs := range a.cpu {
			s.CPUPer1000[name] = stat(vs)
		}
		s.CPUPer1000Total = stat(a.cpuTotal)
		for name, vs := range a.sys {
			if s.SysCPUPer1000 == nil {
				s.SysCPUPer1000 = map[string]Stat{}
			}
			s.SysCPUPer1000[name] = stat(vs)
		}
		for name, vs := range a.wait {
			s.WaitUsPerReq[name] = stat(vs)
		}
		for name, vs := range a.slices {
			s.SlicesPerReq[name] = stat(vs)
		}
		for name, figs := range a.gort {
			if s.GoRuntime == nil {
				s.GoRuntime = map[string]map[string]Stat{}
			}
			s.GoRuntime[name] = map[string]Stat{}
			for k, vs := range figs {
				s.GoRuntime[name][k] = stat(vs)
			}
		}
		for name, counts := range a.sysc {
			if s.Syscalls == nil {
				s.Syscalls = map[string]map[string]Stat{}
			}
			s.Syscalls[name] = map[string]Stat{}
			for k, vs := range counts {
				s.Syscalls[name][k] = stat(vs)
			}
		}
	}
	for _, s := range r.Summaries {
		d := r.find(s.Protocol, "direct")
		if d == nil || d.P50.N == 0 || s.P50.N == 0 {
			continue
		}
		s.Added = []float64{s.P50.Median - d.P50.Median, s.P90.Median - d.P90.Median, s.P99.Median - d.P99.Median, s.P999.Median - d.P999.Median}
	}
	order := map[string]int{}
	for i, p := range Paths(Peers, true) {
		order[p.Name()] = i
	}
	porder := map[Protocol]int{}
	for i, p := range Protocols {
		porder[p] = i
	}
	sort.SliceStable(r.Summaries, func(i, j int) bool {
		a, b := r.Summaries[i], r.Summaries[j]
		if a.Protocol != b.Protocol {
			return porder[a.Protocol] < porder[b.Protocol]
		}
		return order[a.Path] < order[b.Path]
	})
	sort.SliceStable(r.Memory, func(i, j int) bool {
		if r.Memory[i].Peer != r.Memory[j].Peer {
			return peerOrder(r.Memory[i].Peer) < peerOrder(r.Memory[j].Peer)
		}
		return r.Memory[i].Hop < r.Memory[j].Hop
	})
}

func peerOrder(p Peer) int {
	for i, q := range Peers {
		if p == q {
			return i
		}
	}
	return len(Peers)
}

func (r *Report) find(proto Protocol, path string) *Summary {
	for _, s := range r.Summaries {
		if s.Protocol == proto && s.Path == path {
			return s
		}
	}
	return nil
}

// Rerender recomputes the summaries of a report read back from its JSON
// (after a change to how figures are summarized or rendered).
func (r *Report) Rerender() {
	for _, s := range r.Summaries {
		s.Errors = nil
	}
	r.Summarize()
}

// JSON is the report as indented JSON.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }
