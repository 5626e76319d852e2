package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times; it is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// ProcStat is what the harness reads from /proc/PID/stat and status.
type ProcStat struct {
	PPID     int
	CPUTicks uint64 // utime + stime
	SysTicks uint64 // stime: time in the kernel
	RSSBytes uint64 // VmRSS
}

// ParseStat reads the parent PID and the user+system CPU ticks from the
// content of /proc/PID/stat. The command name (field 2) may contain spaces
// and parentheses, so fields are counted from the last ')'.
func ParseStat(b []byte) (ppid int, ticks uint64, err error) {
	ppid, ut, st, err := parseStat(b)
	return ppid, ut + st, err
}

// parseStat is ParseStat with the user and system ticks apart.
func parseStat(b []byte) (ppid int, user, sys uint64, err error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, 0, errors.New("stat: no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, 0, fmt.Errorf("stat: ppid %q: %w", f[1], err)
	}
	user, err = strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("stat: utime %q: %w", f[11], err)
	}
	sys, err = strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("stat: stime %q: %w", f[12], err)
	}
	return ppid, user, sys, nil
}

// ParseRSS reads VmRSS from the content of /proc/PID/status, in bytes.
func ParseRSS(b []byte) (uint64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: VmRSS %q: want \"N kB\"", strings.TrimSpace(v))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: VmRSS %q: %w", f[0], err)
		}
		return n * 1024, nil
	}
	return 0, errors.New("status: no VmRSS line")
}

// readProc reads one process's stat and status.
func readProc(pid int) (ProcStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	ppid, user, sys, err := parseStat(b)
	if err != nil {
		return ProcStat{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcStat{}, err
	}
	rss, err := ParseRSS(b)
	if err != nil {
		return ProcStat{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return ProcStat{PPID: ppid, CPUTicks: user + sys, SysTicks: sys, RSSBytes: rss}, nil
}

// Usage is what the harness reads for a process tree: CPU time and RSS, and
// from /proc/PID/task/*/schedstat how long its threads waited on a run queue
// while runnable and how many times they were put on a CPU.
type Usage struct {
	CPUSeconds float64 // from /proc/PID/stat: 10 ms ticks
	SysSeconds float64 // of CPUSeconds, in the kernel
	RSS        uint64
	RunNs      uint64 // time on a CPU, summed over live threads (ns)
	WaitNs     uint64 // run-queue wait, summed over threads
	Slices     uint64 // times a thread was scheduled in
	Pids       []int  // the process and its descendants
}

// Sched is one thread's /proc/PID/task/TID/schedstat, or a sum of them:
// time on a CPU (ns, the scheduler's own clock, so exact where /proc's
// stat is in 10 ms ticks), time waiting on a run queue (ns) and the number
// of timeslices run.
type Sched struct{ RunNs, WaitNs, Slices uint64 }

// ParseSchedstat reads the content of a schedstat file.
func ParseSchedstat(b []byte) (Sched, error) {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return Sched{}, fmt.Errorf("schedstat: %d fields, want 3", len(f))
	}
	var s Sched
	for i, dst := range []*uint64{&s.RunNs, &s.WaitNs, &s.Slices} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return Sched{}, fmt.Errorf("schedstat: field %d %q: %w", i+1, f[i], err)
		}
		*dst = v
	}
	return s, nil
}

// schedOf sums ParseSchedstat over a process's live threads; zero where
// the kernel does not provide schedstat.
func schedOf(pid int) Sched {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return Sched{}
	}
	var sum Sched
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if s, err := ParseSchedstat(b); err == nil {
			sum.RunNs, sum.WaitNs, sum.Slices = sum.RunNs+s.RunNs, sum.WaitNs+s.WaitNs, sum.Slices+s.Slices
		}
	}
	return sum
}

// cpuSeconds is the CPU time a process tree used between two readings:
// from the threads' schedstat (nanoseconds) where the kernel provides it,
// else from /proc's 10 ms ticks, which at dpbench's fixed rate are a
// 2-3 % step. A thread that exited between the readings takes its time
// out of the schedstat sum (the ticks keep it), so a schedstat figure more
// than two ticks below the ticks' falls back to them.
func cpuSeconds(before, after Usage) float64 {
	ticks := after.CPUSeconds - before.CPUSeconds
	if before.RunNs == 0 || after.RunNs < before.RunNs {
		return ticks
	}
	if ns := float64(after.RunNs-before.RunNs) / 1e9; ns >= ticks-2.0/clockTicks {
		return ns
	}
	return ticks
}

// TreeUsage sums CPU time, RSS and scheduling over a process and its
// descendants (nginx's master and workers). Processes that exit while it
// reads are skipped.
func TreeUsage(root int) (Usage, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return Usage{}, err
	}
	stats := map[int]ProcStat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProc(pid); err == nil {
			stats[pid] = st
		}
	}
	if _, ok := stats[root]; !ok {
		return Usage{}, fmt.Errorf("pid %d: not running", root)
	}
	var u Usage
	var ticks, sys uint64
	members := map[int]bool{}
	add := func(pid int) {
		members[pid] = true
		u.Pids = append(u.Pids, pid)
		ticks += stats[pid].CPUTicks
		sys += stats[pid].SysTicks
		u.RSS += stats[pid].RSSBytes
		s := schedOf(pid)
		u.RunNs, u.WaitNs, u.Slices = u.RunNs+s.RunNs, u.WaitNs+s.WaitNs, u.Slices+s.Slices
	}
	add(root)
	for changed := true; changed; {
		changed = false
		for pid, st := range stats {
			if !members[pid] && members[st.PPID] {
				add(pid)
				changed = true
			}
		}
	}
	u.CPUSeconds = float64(ticks) / clockTicks
	u.SysSeconds = float64(sys) / clockTicks
	return u, nil
}

// Process is a child process of the benchmark, pinned to CPUs with taskset.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // its stdout and stderr
	CPUs string // taskset list, "" when not pinned
	// peak is the largest RSS seen by Usage.
	peak uint64
	done chan struct{} // closed when the process has exited
}

// Start runs argv with its output in dir/NAME.log, pinned to cpus when cpus
// is not empty (taskset -c), with env added to the benchmark's environment.
func Start(ctx context.Context, dir, name, cpus string, env []string, argv ...string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, Log: logPath, CPUs: cpus, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Usage returns the CPU time, RSS and scheduling of the process and its
// children, remembering the largest RSS.
func (p *Process) Usage() (Usage, error) {
	u, err := TreeUsage(p.Cmd.Process.Pid)
	if err == nil && u.RSS > p.peak {
		p.peak = u.RSS
	}
	if err != nil {
		err = fmt.Errorf("%s: %w (log %s)", p.Name, err, p.Log)
	}
	return u, err
}

// ResetPeak forgets the largest RSS seen.
func (p *Process) ResetPeak() { p.peak = 0 }

// Peak is the largest RSS seen since ResetPeak.
func (p *Process) Peak() uint64 { return p.peak }

// Stop ends the process group: SIGTERM, then SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) {
	if p == nil || p.Cmd.Process == nil {
		return
	}
	pgid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// LogTail returns the last n bytes of the process's log.
func (p *Process) LogTail(n int) string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// runLock is the file whose lock a run holds while its processes run.
const runLock = "/tmp/mast-dpbench.lock"

// lockMachine takes the exclusive lock on path, waiting while another run
// holds it, and returns its release.
func lockMachine(ctx context.Context, path string, log *slog.Logger) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("run lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		log.Info("waiting for another dpbench run to finish", "lock", path)
		done := make(chan error, 1)
		go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			// The blocked flock keeps f; the process is ending.
			return nil, ctx.Err()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("run lock: %w", err)
		}
	}
	return func() { f.Close() }, nil
}
