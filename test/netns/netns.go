// Package netns is a harness for end-to-end tests that need real network
// namespaces: it creates named namespaces (`ip netns`), joins them with veth
// pairs, runs commands and starts processes inside them (optionally as
// another user), and opens sockets inside them from the test process. Every
// namespace is deleted, and every process left in it killed, when the test
// ends, pass or fail.
//
// The tests need root, iproute2 and iptables; Require skips a test with the
// reason when the machine cannot run them.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mast-mesh/mast/internal/proxy/capture"
)

// Unavailable returns why this machine cannot run network-namespace tests
// that use the given programs (besides ip), or "" when it can.
func Unavailable(programs ...string) string {
	if runtime.GOOS != "linux" {
		return "network namespaces need Linux, this is " + runtime.GOOS
	}
	if os.Geteuid() != 0 {
		return "creating network namespaces and installing iptables rules needs root (euid is " + strconv.Itoa(os.Geteuid()) + ")"
	}
	for _, p := range append([]string{"ip"}, programs...) {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Sprintf("%s is not installed (Debian: apt-get install -y iproute2 iptables curl): %v", p, err)
		}
	}
	return ""
}

// Require skips t unless the machine can run network-namespace tests with
// the given programs. It also skips under -short.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("network-namespace test skipped with -short")
	}
	if why := Unavailable(programs...); why != "" {
		t.Skip(why)
	}
}

// Namespace is a named network namespace, /run/netns/Name.
type Namespace struct {
	Name string
}

// NewNamespace creates a network namespace named "mast-PREFIX-RANDOM" with
// its loopback interface up, and deletes it when t ends, after killing any
// process still running in it.
func NewNamespace(t testing.TB, prefix string) *Namespace {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := &Namespace{Name: "mast-" + prefix + "-" + hex.EncodeToString(b[:])}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { n.delete(t) })
	if out, err := n.Exec(context.Background(), "ip", "link", "set", "lo", "up"); err != nil {
		t.Fatalf("%s: lo up: %v: %s", n.Name, err, out)
	}
	return n
}

func (n *Namespace) delete(t testing.TB) {
	// Processes still in the namespace are the test's own (the name is
	// unique to this test); end them by PID so the namespace can go.
	if out, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		t.Errorf("deleting namespace %s: %v: %s", n.Name, err, out)
	}
}

// Exec runs a program in the namespace (`ip netns exec NAME ...`) and
// returns its combined output.
func (n *Namespace) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{"netns", "exec", n.Name, name}, args...)
	out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %s %s: %w", n.Name, name, strings.Join(args, " "), err)
	}
	return out, nil
}

// Runner is a capture.Runner that runs programs inside the namespace, for
// capture.Install and capture.Uninstall.
func (n *Namespace) Runner() capture.Runner {
	return func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		argv := append([]string{"netns", "exec", n.Name, name}, args...)
		cmd := exec.CommandContext(ctx, "ip", argv...)
		if stdin != nil {
			cmd.Stdin = strings.NewReader(string(stdin))
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("%s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
}

// RunIn runs fn on an OS thread that has entered the namespace. Sockets fn
// opens belong to the namespace for their whole life, and processes fn
// starts (os/exec) are born in it. The thread is discarded afterwards, so
// no other goroutine ever runs in the namespace by accident.
func (n *Namespace) RunIn(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the goroutine exits locked and the runtime
		// terminates the thread instead of reusing it.
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", n.Name))
		if err != nil {
			errc <- fmt.Errorf("entering %s: %w", n.Name, err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("entering %s: setns: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Listen opens a listener inside the namespace.
func (n *Namespace) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := n.RunIn(func() (err error) {
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// Dial connects from inside the namespace.
func (n *Namespace) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.RunIn(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Start starts cmd inside the namespace, as uid:gid when asUser is set (with
// no supplementary groups). The program must be executable by that user:
// see SharedDir.
func (n *Namespace) Start(cmd *exec.Cmd, asUser bool, uid, gid uint32) error {
	if asUser {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: gid} // and no supplementary groups
	}
	return n.RunIn(cmd.Start)
}

// Veth joins two namespaces with a veth pair: interface ifA with address
// addrA in a, ifB with addrB in b, both up. The pair goes away with either
// namespace.
func Veth(t testing.TB, a *Namespace, ifA string, addrA netip.Prefix, b *Namespace, ifB string, addrB netip.Prefix) {
	t.Helper()
	ctx := context.Background()
	if out, err := exec.Command("ip", "link", "add", ifA, "netns", a.Name, "type", "veth", "peer", "name", ifB, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("creating veth %s/%s: %v: %s", ifA, ifB, err, out)
	}
	for _, side := range []struct {
		ns   *Namespace
		ifc  string
		addr netip.Prefix
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		addAddr := []string{"-4", "addr", "add", side.addr.String(), "dev", side.ifc}
		if side.addr.Addr().Is6() {
			// No duplicate address detection: the address works at once.
			addAddr = []string{"-6", "addr", "add", side.addr.String(), "dev", side.ifc, "nodad"}
		}
		for _, args := range [][]string{addAddr, {"link", "set", side.ifc, "up"}} {
			if out, err := side.ns.Exec(ctx, "ip", args...); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
	}
}

// SharedDir returns a new directory that every user can read and search,
// removed when t ends: a place for binaries that processes started as
// another user (the proxy's 1337) must execute. t.TempDir is private to root.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mast-netns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// CopyExecutable copies the running test binary into dir as an executable
// every user can run, and returns its path: the way to run code from the
// test (a stand-in process) as another user.
func CopyExecutable(t testing.TB, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, filepath.Base(self))
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(errors.Join(fmt.Errorf("copying %s", self), err))
	}
	return path
}
