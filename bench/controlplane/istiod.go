package controlplane

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mast-mesh/mast/internal/kube/kubetest"
)

// IstiodPath returns Istio's pilot-discovery binary for the istiod peer:
// $ISTIOD, else $MAST_CACHE (~/.cache/mast)/istiod-build/pilot-discovery,
// built there with `go build istio.io/istio/pilot/cmd/pilot-discovery`.
func IstiodPath() (string, error) {
	if p := os.Getenv("ISTIOD"); p != "" {
		return p, nil
	}
	cache, err := kubetest.CacheDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(cache, "istiod-build", "pilot-discovery")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("istiod not found at %s (set $ISTIOD, or build istio.io/istio/pilot/cmd/pilot-discovery there)", p)
	}
	return p, nil
}

// Istiod is Istio's control plane (pilot-discovery) in a child process, the
// peer mastd is compared with in the same scenarios: it reads the same
// ServiceEntries, WorkloadEntries and VirtualService from the same kind of
// config directory (--configDir, Istio's file config source) and serves the
// same simulated proxies over plain-text xDS. This Istio version also needs
// a Kubernetes API server for its cluster bookkeeping, even with file
// config: it gets an empty one (kubetest's etcd and kube-apiserver) that
// holds nothing of the mesh.
type Istiod struct {
	cmd     *exec.Cmd
	done    chan struct{}
	xds     string
	metrics string // monitoring address
	env     *driverT
	Startup time.Duration // from exec to ready, the API server's start excluded
}

// StartIstiod runs pilot-discovery for the config directory dir with
// keepalive (0: Istio's default) as its keepalive timeout. log receives the
// child's output.
func StartIstiod(bin, dir string, keepalive time.Duration, log *os.File) (_ *Istiod, err error) {
	env := &driverT{}
	defer func() {
		if r := recover(); r != nil {
			env.runCleanups()
			f, ok := r.(driverFailure)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("kubernetes API server for istiod: %s", string(f))
		}
	}()
	cl := kubetest.Start(env, kubetest.Options{Output: log})
	cl.Namespace(env, "istio-system", nil)
	ports, err := freePorts(3)
	if err != nil {
		env.runCleanups()
		return nil, err
	}
	work := env.TempDir()
	i := &Istiod{
		xds:     "127.0.0.1:" + strconv.Itoa(ports[0]),
		metrics: "127.0.0.1:" + strconv.Itoa(ports[2]),
		env:     env,
		done:    make(chan struct{}),
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	args := []string{"discovery",
		"--configDir", dir,
		"--kubeconfig", cl.Kubeconfig,
		"--registries", "Kubernetes",
		"--namespace", "istio-system",
		"--grpcAddr", i.xds,
		"--httpAddr", httpAddr,
		"--monitoringAddr", i.metrics,
		"--secureGRPCAddr", "",
		"--httpsAddr", "",
		"--meshConfig", filepath.Join(work, "mesh"), // absent: Istio's default mesh
		"--networksConfig", filepath.Join(work, "meshNetworks"),
		// Per-push info lines would cost istiod CPU that mastd (at warn) does not spend.
		"--log_output_level", "default:warn,ads:warn,delta:warn,model:warn,krt:warn,controllers:warn,kube:error,discovery:warn",
	}
	if keepalive > 0 {
		args = append(args, "--keepaliveTimeout", keepalive.String())
	}
	start := time.Now()
	i.cmd = exec.Command(bin, args...)
	i.cmd.Dir = work
	i.cmd.Env = append(os.Environ(), "ENABLE_CA_SERVER=false", "POD_NAME=istiod-bench", "POD_NAMESPACE=istio-system")
	i.cmd.Stdout, i.cmd.Stderr = log, log
	i.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := i.cmd.Start(); err != nil {
		env.runCleanups()
		return nil, fmt.Errorf("start istiod: %w", err)
	}
	go func() { i.cmd.Wait(); close(i.done) }()
	if err := i.waitReady("http://"+httpAddr+"/ready", 5*time.Minute); err != nil {
		i.Close()
		return nil, err
	}
	i.Startup = time.Since(start)
	return i, nil
}

func (i *Istiod) waitReady(url string, limit time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(limit)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-i.done:
			return fmt.Errorf("istiod exited before it was ready: %v", i.cmd.ProcessState)
		default:
		}
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("istiod not ready after %v: %s", limit, last)
}

// XDSAddr is istiod's plain-text xDS address.
func (i *Istiod) XDSAddr() string { return i.xds }

// Mem reads istiod's resident memory from /proc and its Go heap in use from
// its metrics (it cannot be made to collect garbage first, so heap in use
// includes garbage not yet collected).
func (i *Istiod) Mem() (MemStats, error) {
	var m MemStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", i.cmd.Process.Pid))
	if err != nil {
		return m, err
	}
	m.RSS, m.PeakRSS = procStatusKB(string(b), "VmRSS"), procStatusKB(string(b), "VmHWM")
	resp, err := http.Get("http://" + i.metrics + "/metrics")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch name {
		case "go_memstats_heap_inuse_bytes":
			m.HeapInuse = uint64(f)
		case "go_memstats_heap_alloc_bytes":
			m.HeapAlloc = uint64(f)
		case "go_memstats_sys_bytes":
			m.Sys = uint64(f)
		case "go_goroutines":
			m.Goroutines = int(f)
		}
	}
	return m, sc.Err()
}

func procStatusKB(status, key string) uint64 {
	for line := range strings.SplitSeq(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			n, _ := strconv.ParseUint(f[0], 10, 64)
			return n << 10
		}
	}
	return 0
}

// CPU reads istiod's CPU time and run-queue wait from /proc.
func (i *Istiod) CPU() (CPUTime, error) { return procCPU(i.cmd.Process.Pid) }

var errIstiodProfile = errors.New("the benchmark does not profile istiod")

// StartCPUProfile is not supported for istiod.
func (i *Istiod) StartCPUProfile(string) error { return errIstiodProfile }

// StopCPUProfile is not supported for istiod.
func (i *Istiod) StopCPUProfile() error { return errIstiodProfile }

// WriteHeapProfile is not supported for istiod.
func (i *Istiod) WriteHeapProfile(string) error { return errIstiodProfile }

// Close stops istiod, then the API server and etcd, and removes their files.
func (i *Istiod) Close() error {
	if i.cmd.Process != nil {
		i.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-i.done:
		case <-time.After(15 * time.Second):
			i.cmd.Process.Kill()
			<-i.done
		}
	}
	i.env.runCleanups()
	return nil
}

// procCPU returns the CPU time (utime + stime from /proc/PID/stat) and the
// run-queue wait summed over the threads of process pid.
func procCPU(pid int) (CPUTime, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPUTime{}, err
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')') // the command may contain spaces
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return CPUTime{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseFloat(f[11], 64) // field 14
	st, _ := strconv.ParseFloat(f[12], 64) // field 15
	const ticks = 100                      // USER_HZ on Linux
	return CPUTime{Ms: (ut + st) * 1000 / ticks, WaitMs: runQueueWaitMsOf(fmt.Sprintf("/proc/%d/task", pid))}, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// driverT is kubetest.T for a benchmark driver: a failure panics with a
// driverFailure that StartIstiod turns into an error, and cleanups run at
// Close.
type driverT struct {
	cleanups []func()
	dirs     []string
}

type driverFailure string

var _ kubetest.T = (*driverT)(nil)

func (d *driverT) Helper()                   {}
func (d *driverT) Failed() bool              { return false }
func (d *driverT) Logf(string, ...any)       {}
func (d *driverT) Cleanup(f func())          { d.cleanups = append(d.cleanups, f) }
func (d *driverT) Skip(args ...any)          { panic(driverFailure(fmt.Sprint(args...))) }
func (d *driverT) Fatal(args ...any)         { panic(driverFailure(fmt.Sprint(args...))) }
func (d *driverT) Fatalf(f string, a ...any) { panic(driverFailure(fmt.Sprintf(f, a...))) }

func (d *driverT) TempDir() string {
	dir, err := os.MkdirTemp("", "cpbench-istiod-")
	if err != nil {
		d.Fatal(err)
	}
	d.dirs = append(d.dirs, dir)
	return dir
}

func (d *driverT) runCleanups() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	d.cleanups = nil
	for _, dir := range d.dirs {
		os.RemoveAll(dir)
	}
	d.dirs = nil
}
