package listener

import (
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/httpproxy"
	"github.com/mast-mesh/mast/internal/proxy/overload"
	"github.com/mast-mesh/mast/internal/proxy/tcpproxy"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// flakyListener fails Accept with EMFILE while failing is set, as a
// process out of file descriptors does.
type flakyListener struct {
	net.Listener
	failing atomic.Bool
	fails   atomic.Int64
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failing.Load() {
		l.fails.Add(1)
		time.Sleep(time.Millisecond)
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptErrorsBackOffAndRecover: an accept error does not end the
// listener; while accepts fail the manager reports it unhealthy (so /ready
// says not ready), and once they succeed again connections are served.
func TestAcceptErrorsBackOffAndRecover(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var cfg atomic.Pointer[httpproxy.Config]
	cfg.Store(&httpproxy.Config{})
	m := NewManager(httpproxy.NewServer(&cfg, upstream.NewManager(log), log), tcpproxy.New(nil, log), log)
	t.Cleanup(func() { m.Shutdown(100 * time.Millisecond) })
	var fl *flakyListener
	m.Listen = func(n, a string) (net.Listener, error) {
		ln, err := net.Listen(n, a)
		if err != nil {
			return nil, err
		}
		fl = &flakyListener{Listener: ln}
		fl.failing.Store(true)
		return fl, nil
	}
	snap, err := xdsparse.Apply(xdsparse.EmptySnapshot(), xdsparse.ListenerType, "1",
		[]*anypb.Any{xdstest.Any(xdstest.HTTPListener("in", "127.0.0.1:0", "r"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Update(snap.Listeners); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for fl.fails.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("accept was not retried")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ok, errs := m.Healthy(); ok || len(errs) != 1 {
		t.Fatalf("healthy %v %v while accept fails", ok, errs)
	}
	if info := m.Listeners(); len(info) != 1 || info[0].Error == "" {
		t.Fatalf("listener info hides the failure: %+v", info)
	}
	fl.failing.Store(false)
	c, err := net.Dial("tcp", fl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nhost: a\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, 12)
	if _, err := io.ReadFull(c, b); err != nil || string(b[:9]) != "HTTP/1.1 " {
		t.Fatalf("no answer after recovery: %q %v", b, err)
	}
	if ok, errs := m.Healthy(); !ok {
		t.Fatalf("still unhealthy after accepting again: %v", errs)
	}
	if m.AcceptErrors.Load() != 1 {
		t.Fatalf("AcceptErrors %d, want 1 episode", m.AcceptErrors.Load())
	}
}

// TestConnectionCap: connections over the overload manager's cap are
// closed as they are accepted; below it they are served.
func TestConnectionCap(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var cfg atomic.Pointer[httpproxy.Config]
	cfg.Store(&httpproxy.Config{})
	m := NewManager(httpproxy.NewServer(&cfg, upstream.NewManager(log), log), tcpproxy.New(nil, log), log)
	m.Overload = overload.New(overload.Config{MaxConnections: 1})
	t.Cleanup(func() { m.Shutdown(100 * time.Millisecond) })
	snap, err := xdsparse.Apply(xdsparse.EmptySnapshot(), xdsparse.ListenerType, "1",
		[]*anypb.Any{xdstest.Any(xdstest.HTTPListener("in", "127.0.0.1:0", "r"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Update(snap.Listeners); err != nil {
		t.Fatal(err)
	}
	addr := m.Listeners()[0].Bound
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	deadline := time.Now().Add(20 * time.Second)
	for m.Overload.Conns() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("first connection not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection over the cap was served (%d bytes)", n)
	}
	if m.Overload.Stats.ConnsRejected.Load() != 1 {
		t.Fatalf("ConnsRejected %d", m.Overload.Stats.ConnsRejected.Load())
	}
	io.WriteString(first, "GET / HTTP/1.1\r\nhost: a\r\n\r\n")
	first.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := first.Read(make([]byte, 1)); err != nil {
		t.Fatalf("connection under the cap not served: %v", err)
	}
}
