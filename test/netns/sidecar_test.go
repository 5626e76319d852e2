package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/capture"
)

// The stand-in sidecar is this test binary started again with
// sidecarEnv=1: a byte-level TCP proxy on 15001 (outbound) and 15006
// (inbound) that finds each connection's original destination with
// capture.OriginalDst, connects there, and tags the HTTP request it relays
// with a header naming the hop, what OriginalDst said and the uid:gid it
// runs as. Outbound, it connects to the original destination directly; inbound,
// it connects from 127.0.0.6, as Istio's inbound passthrough does (the
// capture rules RETURN that source, so it is not captured again).
const (
	sidecarEnv   = "MAST_NETNS_SIDECAR"
	sidecarNSEnv = "MAST_NETNS_NAME"
	hopHeader    = "X-Mast-Hop-"
)

func TestMain(m *testing.M) {
	if os.Getenv(sidecarEnv) == "1" {
		if err := runSidecar(os.Getenv(sidecarNSEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "sidecar:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runSidecar(ns string) error {
	out, err := net.Listen("tcp", fmt.Sprintf(":%d", capture.DefaultOutboundPort))
	if err != nil {
		return err
	}
	in, err := net.Listen("tcp", fmt.Sprintf(":%d", capture.DefaultInboundPort))
	if err != nil {
		return err
	}
	fmt.Println("ready") // the test waits for this line
	errc := make(chan error, 2)
	go func() { errc <- serve(out, "Outbound", nil, ns) }()
	go func() { errc <- serve(in, "Inbound", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 6)}, ns) }()
	return <-errc
}

func serve(l net.Listener, hop string, from *net.TCPAddr, ns string) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			if err := relay(c.(*net.TCPConn), hop, from, ns); err != nil {
				fmt.Fprintf(os.Stderr, "sidecar %s %s: %v\n", ns, hop, err)
			}
		}()
	}
}

func relay(c *net.TCPConn, hop string, from *net.TCPAddr, ns string) error {
	defer c.Close()
	orig, err := capture.OriginalDst(c)
	if err != nil {
		return err
	}
	if local := c.LocalAddr().(*net.TCPAddr).AddrPort(); orig == local {
		return fmt.Errorf("connection to %v was not redirected; refusing to loop", orig)
	}
	d := net.Dialer{}
	if from != nil {
		d.LocalAddr = from
	}
	up, err := d.Dial("tcp", orig.String())
	if err != nil {
		return err
	}
	defer up.Close()
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading request line: %w", err)
	}
	if _, err := fmt.Fprintf(up, "%s%s%s: orig=%s uid=%d gid=%d ns=%s\r\n", line, hopHeader, hop, orig, os.Getuid(), os.Getgid(), ns); err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(up, br)
		_ = up.(*net.TCPConn).CloseWrite()
	}()
	_, err = io.Copy(c, up)
	return err
}

// startSidecar starts the stand-in sidecar in ns as uid:gid 1337:1337 from
// a copy of the test binary in a shared directory, waits until it listens,
// and stops it when t ends.
func startSidecar(t *testing.T, ns *Namespace, exe string) {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), sidecarEnv+"=1", sidecarNSEnv+"="+ns.Name)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(cmd, true, capture.DefaultProxyID, capture.DefaultProxyID); err != nil {
		t.Fatalf("starting sidecar in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if s := stderr.String(); s != "" {
			t.Logf("sidecar %s stderr:\n%s", ns.Name, s)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		werr := cmd.Wait()
		t.Fatalf("sidecar in %s did not start: %q, %v (%v): %s", ns.Name, line, err, errors.Join(werr), stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
}

// sidecarCtx is the context the tests run commands with.
func sidecarCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
