package localmesh

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// child is one started process of the mesh.
type child struct {
	proc Proc
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (c *child) state() ProcState {
	return ProcState{Name: c.proc.Name, PID: c.cmd.Process.Pid, Admin: c.proc.Admin, ProxyID: c.proc.ProxyID, Log: c.log}
}

// group is the set of processes `mast up` started, stopped in reverse order.
type group struct {
	children []*child
}

// start runs argv with its output in logDir/NAME.log. The child gets SIGKILL
// if mast itself dies, so nothing outlives it.
func (g *group) start(argv []string, p Proc, logDir string) (*child, error) {
	logPath := filepath.Join(logDir, p.Name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", p.Name, err)
	}
	c := &child{proc: p, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	g.children = append(g.children, c)
	return c, nil
}

// stopAll sends SIGTERM to every process, newest first, and SIGKILL to any
// still running after a grace period.
func (g *group) stopAll() {
	for i := len(g.children) - 1; i >= 0; i-- {
		syscall.Kill(-g.children[i].cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(8 * time.Second)
	for _, c := range g.children {
		select {
		case <-c.done:
		case <-deadline:
			for _, c := range g.children {
				syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			}
			for _, c := range g.children {
				<-c.done
			}
			return
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.ReplaceAll(string(bytes.Join(lines, []byte("\n"))), "\n", "\n    ")
}
