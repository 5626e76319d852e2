package ctl

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/controlplane"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestCARevokeCommand runs mastd with its CA and revokes an identity with
// `mast ca revoke`: the command needs the debug token, the CA then refuses
// the identity, and `mast ca revoked` lists it.
func TestCARevokeCommand(t *testing.T) {
	caDir := t.TempDir()
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- controlplane.Run(ctx, controlplane.Config{
			ConfigDir: t.TempDir(), XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0",
			CADir: caDir, SecureXDSAddr: "127.0.0.1:0", Mesh: model.DefaultMeshConfig(),
			DebounceQuiet: 10 * time.Millisecond, DebounceMax: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(_, mon net.Addr) { ready <- mon.String() },
		})
	}()
	defer func() { cancel(); <-done }()
	mon := <-ready
	tokenFile := filepath.Join(caDir, controlplane.DebugTokenName)
	const id = "spiffe://cluster.local/ns/default/sa/reviews"
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := CA(context.Background(), args, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("revoke", "--monitoring-addr", mon, "--token-file", filepath.Join(t.TempDir(), "none"), id); code == 0 {
		t.Fatalf("revoke without the token succeeded: %s", out)
	}
	if code, out := run("revoke", "--monitoring-addr", mon, "--token-file", tokenFile, "--reason", "key leaked", id); code != 0 || !strings.Contains(out, "revoked "+id) {
		t.Fatalf("revoke: %d %s", code, out)
	}
	if code, out := run("revoked", "--monitoring-addr", mon); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "key leaked") {
		t.Fatalf("revoked: %d %s", code, out)
	}
	if code, out := run("revoke", "--monitoring-addr", mon, "--token-file", tokenFile, "not-an-id"); code == 0 {
		t.Fatalf("revoke of a malformed identity succeeded: %s", out)
	}
	c, err := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Revoked(); len(r) != 1 || r[0].ID != id {
		t.Errorf("persisted revocations: %+v", r)
	}
}
