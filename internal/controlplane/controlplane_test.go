package controlplane

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestRotateRootEndpoint runs mastd with its CA and starts a root rotation
// over the monitoring port: the trust bundle then holds both roots.
func TestRotateRootEndpoint(t *testing.T) {
	caDir := t.TempDir()
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			ConfigDir: t.TempDir(), XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0",
			CADir: caDir, SecureXDSAddr: "127.0.0.1:0", Mesh: model.DefaultMeshConfig(),
			DebounceQuiet: 10 * time.Millisecond, DebounceMax: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(_, mon net.Addr) { ready <- mon.String() },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	mon := <-ready
	roots := func() int {
		b, err := os.ReadFile(filepath.Join(caDir, "root-cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
			n++
		}
		return n
	}
	if n := roots(); n != 1 {
		t.Fatalf("before rotation: %d roots in the bundle, want 1", n)
	}
	if resp, err := http.Get("http://" + mon + "/debug/ca/rotate-root"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v, want 405", resp, err)
	}
	resp, err := http.Post("http://"+mon+"/debug/ca/rotate-root?propagation=1h&overlap=3h", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sched map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&sched); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("rotate: %s %v %v", resp.Status, sched, err)
	}
	if !strings.Contains(sched["switchAt"].(string), "T") || sched["newRootSerial"] == "" {
		t.Fatalf("schedule: %v", sched)
	}
	if n := roots(); n != 2 {
		t.Fatalf("during the overlap: %d roots in the bundle, want 2", n)
	}
	bad, _ := http.Post("http://"+mon+"/debug/ca/rotate-root?propagation=soon", "", nil)
	if bad.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad duration: %s, want 400", bad.Status)
	}
}
