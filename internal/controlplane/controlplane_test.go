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
	tok, err := os.ReadFile(filepath.Join(caDir, DebugTokenName))
	if err != nil {
		t.Fatalf("mastd wrote no debug token: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(caDir, DebugTokenName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("debug token mode %v, want 0600", fi.Mode().Perm())
	}
	post := func(query string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+mon+"/debug/ca/rotate-root"+query, nil)
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	auth := "Bearer " + strings.TrimSpace(string(tok))
	// Refusals: nothing may start a rotation without the token, nor from
	// another origin or under another host name, even with it.
	for name, tc := range map[string]struct {
		hdr  map[string]string
		want int
	}{
		"no token":              {nil, http.StatusUnauthorized},
		"wrong token":           {map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
		"cross-origin":          {map[string]string{"Authorization": auth, "Origin": "http://evil.example"}, http.StatusForbidden},
		"cross-site fetch":      {map[string]string{"Authorization": auth, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		"DNS rebinding (Host)":  {map[string]string{"Authorization": auth, "Host": "evil.example:15014"}, http.StatusMisdirectedRequest},
		"null origin (sandbox)": {map[string]string{"Authorization": auth, "Origin": "null"}, http.StatusForbidden},
	} {
		if resp := post("?propagation=1h&overlap=3h", tc.hdr); resp.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d", name, resp.Status, tc.want)
		}
		if n := roots(); n != 1 {
			t.Fatalf("%s started a rotation", name)
		}
	}
	for name, hdr := range map[string]map[string]string{
		"rebinding Host": {"Host": "attacker.example"}, "cross-site": {"Sec-Fetch-Site": "cross-site"},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+mon+"/debug/configz", nil)
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode < 400 {
			t.Errorf("GET /debug/configz with %s: %v %v, want refused", name, resp.Status, err)
		}
	}
	if resp, err := http.Get("http://" + mon + "/debug/configz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /debug/configz: %v %v", resp, err)
	}
	resp := post("?propagation=1h&overlap=3h", map[string]string{"Authorization": auth, "Origin": "http://" + mon})
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
	bad := post("?propagation=soon", map[string]string{"Authorization": auth})
	if bad.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad duration: %s, want 400", bad.Status)
	}
	// /debug/ lists every debug page.
	idx, err := http.Get("http://" + mon + "/debug/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(idx.Body)
	idx.Body.Close()
	for _, want := range []string{"/debug/syncz", "/debug/configz", "/debug/ca/rotate-root", "/metrics"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/debug/ index lacks %s:\n%s", want, b)
		}
	}
}

// TestRunReturnsWithRateLimitService: mastd's default components include
// the rate-limit service, whose gRPC server must stop on shutdown too.
// Before, Run waited for it forever, so a SIGTERM never ended mastd.
func TestRunReturnsWithRateLimitService(t *testing.T) {
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			ConfigDir: t.TempDir(), XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0",
			RateLimit: RateLimitConfig{Enabled: true, Addr: "127.0.0.1:0"},
			Mesh:      model.DefaultMeshConfig(), DebounceQuiet: 10 * time.Millisecond, DebounceMax: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(_, _ net.Addr) { close(ready) },
		})
	}()
	<-ready
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return a minute after its context ended")
	}
}
