package controlplane

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mastd "github.com/mast-mesh/mast/internal/controlplane"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// MemStats is mastd's memory after a forced GC.
type MemStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	Sys        uint64 `json:"sys"`
	RSS        uint64 `json:"rss"`      // VmRSS
	PeakRSS    uint64 `json:"peak_rss"` // VmHWM: the high-water mark since the process started
	Goroutines int    `json:"goroutines"`
}

// readMem collects garbage and returns freed pages to the OS first, so that
// RSS reflects what is live rather than what earlier rounds left behind.
func readMem() MemStats {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := MemStats{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				continue
			}
			n, _ := strconv.ParseUint(f[0], 10, 64)
			switch k {
			case "VmRSS":
				out.RSS = n << 10
			case "VmHWM":
				out.PeakRSS = n << 10
			}
		}
	}
	return out
}

// CPUTime is the CPU time a process has used so far, and how long its
// threads have been runnable but waiting for a CPU: on a shared machine the
// second says how much of a latency is the machine's other load.
type CPUTime struct {
	Ms     float64 `json:"ms"`      // user + system
	WaitMs float64 `json:"wait_ms"` // run-queue wait, summed over threads (Linux schedstat)
	// GCCycles and AllocBytes are the Go runtime's completed GC cycles and
	// bytes allocated so far (runtime/metrics): -v logs them per change.
	GCCycles   uint64 `json:"gc_cycles"`
	AllocBytes uint64 `json:"alloc_bytes"`
}

func readCPU() CPUTime {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return CPUTime{}
	}
	gc := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(gc)
	t := CPUTime{Ms: float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6, WaitMs: runQueueWaitMsOf("/proc/self/task")}
	if gc[0].Value.Kind() == metrics.KindUint64 && gc[1].Value.Kind() == metrics.KindUint64 {
		t.GCCycles, t.AllocBytes = gc[0].Value.Uint64(), gc[1].Value.Uint64()
	}
	return t
}

// cpuDelta describes the CPU time, GC cycles and allocation from a to b.
func cpuDelta(a, b CPUTime) string {
	return fmt.Sprintf("CPU %.0f ms, wait %.0f ms, %d GC, %.1f MB allocated", b.Ms-a.Ms, b.WaitMs-a.WaitMs, b.GCCycles-a.GCCycles, float64(b.AllocBytes-a.AllocBytes)/(1<<20))
}

// runQueueWaitMsOf sums the second field of TASKDIR/*/schedstat (ns spent
// runnable on a run queue) over a process's threads (/proc/PID/task); 0
// where the kernel does not provide it. Threads that have exited are not
// counted.
func runQueueWaitMsOf(taskDir string) float64 {
	tasks, err := os.ReadDir(taskDir)
	if err != nil {
		return 0
	}
	var ns float64
	for _, t := range tasks {
		b, err := os.ReadFile(taskDir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			ns += v
		}
	}
	return ns / 1e6
}

// ServeFlag is the first argument that makes cpbench run as the mastd child.
const ServeFlag = "-serve-mastd"

// ServeChild is the child process's main: it runs mastd (controlplane.Run)
// on loopback port 0 for the config directory in args, prints
// {"xds":ADDR,...} on stdout once serving, then answers one JSON line per
// command read from stdin ("mem", "cpuprofile PATH", "stopprofile",
// "heapprofile PATH") and
// exits when stdin closes.
func ServeChild(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mastd-child", flag.ContinueOnError)
	dir := fs.String("config", "", "config directory")
	logLevel := fs.String("log-level", "warn", "mastd log level")
	noCache := fs.Bool("disable-xds-cache", false, "run mastd without its xDS cache (the old behaviour)")
	keepalive := fs.Duration("keepalive-timeout", 0, "mastd's keepalive ping timeout (0: mastd's default, 10s)")
	writeBuffer := fs.Int("write-buffer", 0, "mastd's xDS write buffer (0: mastd's default)")
	noIdleGC := fs.Bool("no-idle-gc", false, "leave garbage collection to the Go runtime alone (mastd's NoIdleGC)")
	gcPercent := fs.Int("gc-percent", mastd.DefaultGCPercent, "mastd's --gc-percent")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *gcPercent <= 0 {
		fmt.Fprintln(stderr, "-gc-percent must be positive")
		return 2
	}
	debug.SetGCPercent(*gcPercent) // as mastd's Main does
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- mastd.Run(ctx, mastd.Config{
			ConfigDir: *dir, XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0",
			Mesh:             model.DefaultMeshConfig(),
			DisableXDSCache:  *noCache,
			NoIdleGC:         *noIdleGC,
			KeepaliveTimeout: *keepalive,
			XDSWriteBuffer:   *writeBuffer,
			Logger:           slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
			Ready:            func(xds, _ net.Addr) { ready <- xds },
		})
	}()
	enc := json.NewEncoder(stdout)
	select {
	case addr := <-ready:
		enc.Encode(map[string]string{"xds": addr.String()})
	case err := <-errc:
		fmt.Fprintln(stderr, "mastd:", err)
		return 1
	}
	var prof *os.File
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		var reply any
		var err error
		switch cmd {
		case "mem":
			reply = readMem()
		case "cpu":
			reply = readCPU()
		case "cpuprofile":
			if prof, err = os.Create(arg); err == nil {
				if err = pprof.StartCPUProfile(prof); err != nil {
					prof.Close()
					prof = nil
				}
			}
		case "heapprofile":
			runtime.GC()
			var hf *os.File
			if hf, err = os.Create(arg); err == nil {
				err = pprof.Lookup("heap").WriteTo(hf, 0)
				if cerr := hf.Close(); err == nil {
					err = cerr
				}
			}
		case "stopprofile":
			if prof != nil {
				pprof.StopCPUProfile()
				err = prof.Close()
				prof = nil
			}
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			reply = map[string]string{"error": err.Error()}
		} else if reply == nil {
			reply = map[string]bool{"ok": true}
		}
		enc.Encode(reply)
	}
	cancel()
	if err := <-errc; err != nil {
		fmt.Fprintln(stderr, "mastd:", err)
		return 1
	}
	return 0
}

// Child is mastd running in a child process (see ServeChild), so that its
// memory and CPU profile exclude the simulated proxies.
type Child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *bufio.Reader
	mu      sync.Mutex
	xds     string
	Startup time.Duration // from exec to serving: loading the config dir and the first push context
}

// StartChild runs exe (a binary whose main calls ServeChild when its first
// argument is ServeFlag) for the config directory dir.
// logLevel is mastd's (debug, info, warn, error); "" means warn. extra are
// more ServeChild flags (-disable-xds-cache).
func StartChild(exe, dir, logLevel string, extra ...string) (*Child, error) {
	start := time.Now()
	if logLevel == "" {
		logLevel = "warn"
	}
	cmd := exec.Command(exe, append([]string{ServeFlag, "-config", dir, "-log-level", logLevel}, extra...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mastd child: %w", err)
	}
	c := &Child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	var hello struct{ XDS string }
	if err := c.readReply(&hello); err != nil {
		c.Close()
		return nil, fmt.Errorf("mastd child did not start: %w", err)
	}
	c.xds = hello.XDS
	c.Startup = time.Since(start)
	return c, nil
}

// XDSAddr is the child's ADS address.
func (c *Child) XDSAddr() string { return c.xds }

func (c *Child) readReply(v any) error {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return err
	}
	var e struct{ Error string }
	if json.Unmarshal(line, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	return json.Unmarshal(line, v)
}

func (c *Child) command(cmd string, reply any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return fmt.Errorf("mastd child %s: %w", cmd, err)
	}
	if reply == nil {
		reply = &struct{}{}
	}
	if err := c.readReply(reply); err != nil {
		return fmt.Errorf("mastd child %s: %w", cmd, err)
	}
	return nil
}

// Mem returns the child's memory after a forced GC.
func (c *Child) Mem() (MemStats, error) {
	var m MemStats
	err := c.command("mem", &m)
	return m, err
}

// CPU returns the CPU time mastd has used so far, and its run-queue wait.
func (c *Child) CPU() (CPUTime, error) {
	var t CPUTime
	err := c.command("cpu", &t)
	return t, err
}

// StartCPUProfile starts profiling mastd into path.
func (c *Child) StartCPUProfile(path string) error { return c.command("cpuprofile "+path, nil) }

// StopCPUProfile stops profiling and writes the profile.
func (c *Child) StopCPUProfile() error { return c.command("stopprofile", nil) }

// WriteHeapProfile writes mastd's heap profile (after a GC) to path.
func (c *Child) WriteHeapProfile(path string) error { return c.command("heapprofile "+path, nil) }

// Close stops the child and waits for it.
func (c *Child) Close() error {
	c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		return <-done
	}
}
