// Package quotatest starts a real Redis for tests (Debian's redis-server).
package quotatest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartRedis starts redis-server on a free loopback port, without
// persistence, stopped when the test ends, and returns its redis:// URL. It
// skips the test, naming the package to install, when redis-server is absent.
func StartRedis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (apt-get install redis-server); .ci/run installs it")
	}
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		ready := make(chan bool, 1)
		var log strings.Builder
		go func() {
			sc := bufio.NewScanner(out)
			ok := false
			for sc.Scan() {
				line := sc.Text()
				if !ok {
					log.WriteString(line + "\n")
				}
				if !ok && strings.Contains(line, "Ready to accept connections") {
					ok = true
					ready <- true
				}
			}
			if !ok {
				ready <- false
			}
		}()
		select {
		case ok := <-ready:
			if ok {
				t.Cleanup(func() {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
				})
				return fmt.Sprintf("redis://127.0.0.1:%d/0", port)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-ready
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Logf("redis-server on port %d did not start (retrying):\n%s", port, log.String())
	}
	t.Fatal("redis-server did not start")
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
