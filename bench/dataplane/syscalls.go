package dataplane

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SyscallEvents are the perf tracepoints a fixed-rate run counts in each
// proxy: every system call (raw_syscalls:sys_enter, "all"), the ones a proxy
// makes per request by name, and reads that found nothing to read (exits of
// read and recvfrom with EAGAIN, "read-eagain"). The counts do not depend
// on the machine's load, unlike CPU time.
var SyscallEvents = []struct{ Name, Event, Filter string }{
	{"all", "raw_syscalls:sys_enter", ""},
	{"read", "syscalls:sys_enter_read", ""},
	{"read-eagain", "syscalls:sys_exit_read", "ret == -11"},
	{"recvfrom", "syscalls:sys_enter_recvfrom", ""},
	{"recvfrom-eagain", "syscalls:sys_exit_recvfrom", "ret == -11"},
	{"readv", "syscalls:sys_enter_readv", ""},
	{"write", "syscalls:sys_enter_write", ""},
	{"writev", "syscalls:sys_enter_writev", ""},
	{"sendto", "syscalls:sys_enter_sendto", ""},
	{"epoll_wait", "syscalls:sys_enter_epoll_wait", ""},
	{"epoll_pwait", "syscalls:sys_enter_epoll_pwait", ""},
	{"epoll_ctl", "syscalls:sys_enter_epoll_ctl", ""},
	{"futex", "syscalls:sys_enter_futex", ""},
	{"nanosleep", "syscalls:sys_enter_nanosleep", ""},
	{"setsockopt", "syscalls:sys_enter_setsockopt", ""},
	{"getsockopt", "syscalls:sys_enter_getsockopt", ""},
	{"accept4", "syscalls:sys_enter_accept4", ""},
	{"close", "syscalls:sys_enter_close", ""},
	{"tgkill", "syscalls:sys_enter_tgkill", ""},
	{"sched_yield", "syscalls:sys_enter_sched_yield", ""},
	{"clock_gettime", "syscalls:sys_enter_clock_gettime", ""},
}

// syscallCounter is a `perf stat` counting one process tree's system calls
// while a run lasts. Counting tracepoints costs the counted process little
// (no ptrace, no record), so the run's other figures stay comparable.
type syscallCounter struct {
	cmd *exec.Cmd
	out string
}

// startSyscallCount attaches perf to pids (threads that exist now). out is
// where perf writes its CSV.
func startSyscallCount(perf string, pids []int, out string) (*syscallCounter, error) {
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = strconv.Itoa(p)
	}
	args := []string{"stat", "-x", ",", "-o", out, "-p", strings.Join(ps, ",")}
	for _, e := range SyscallEvents {
		args = append(args, "-e", e.Event)
		if e.Filter != "" {
			args = append(args, "--filter", e.Filter)
		}
	}
	cmd := exec.Command(perf, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf stat: %w", err)
	}
	// perf needs a moment to open its counters before the load starts.
	time.Sleep(300 * time.Millisecond)
	return &syscallCounter{cmd: cmd, out: out}, nil
}

// stop ends the count and returns it by SyscallEvents name.
func (c *syscallCounter) stop() (map[string]uint64, error) {
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	b, err := os.ReadFile(c.out)
	if err != nil {
		return nil, fmt.Errorf("perf stat output: %w", err)
	}
	return ParsePerfStat(b)
}

// ParsePerfStat reads `perf stat -x ,` output in SyscallEvents order
// (filtered events repeat a tracepoint's name, so lines are matched by
// position). Counters perf could not read are left out.
func ParsePerfStat(b []byte) (map[string]uint64, error) {
	counts := map[string]uint64{}
	i := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		if i >= len(SyscallEvents) {
			return nil, fmt.Errorf("perf stat: more counters than events: %q", line)
		}
		if f[2] != SyscallEvents[i].Event {
			return nil, fmt.Errorf("perf stat: line %d is %q, want %s", i+1, f[2], SyscallEvents[i].Event)
		}
		switch n, err := strconv.ParseUint(f[0], 10, 64); {
		case err == nil:
			counts[SyscallEvents[i].Name] = n
		case f[0] == "<not counted>": // the process never ran meanwhile
			counts[SyscallEvents[i].Name] = 0
		}
		i++
	}
	if len(counts) == 0 {
		return nil, fmt.Errorf("perf stat: no counts in %q", clip(string(b), 200))
	}
	return counts, nil
}
