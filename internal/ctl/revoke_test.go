package ctl

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"os"
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

// TestCARevokeWithAdminCertificate: with --cert/--key, `mast ca revoke`
// authenticates over TLS with a client certificate of one of mastd's
// --debug-admin-identities instead of the token (none is readable here);
// another identity's certificate is refused (403, named).
func TestCARevokeWithAdminCertificate(t *testing.T) {
	caDir := t.TempDir()
	const admin = "spiffe://cluster.local/ns/istio-system/sa/mast-admin"
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- controlplane.Run(ctx, controlplane.Config{
			ConfigDir: t.TempDir(), XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0",
			CADir: caDir, SecureXDSAddr: "127.0.0.1:0", Mesh: model.DefaultMeshConfig(),
			DebounceQuiet: 10 * time.Millisecond, DebounceMax: time.Second,
			DebugAdminIdentities: []string{admin},
			Logger:               slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:                func(_, mon net.Addr) { ready <- mon.String() },
		})
	}()
	defer func() { cancel(); <-done }()
	mon := <-ready
	c, err := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	// certFiles issues a workload certificate for ns/sa and writes it and
	// its key as PEM files.
	certFiles := func(ns, sa string) (string, string) {
		id, err := c.WorkloadID(ns, sa)
		if err != nil {
			t.Fatal(err)
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		chain, _, err := c.IssueWorkloadCertificate(id, key.Public(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if err := os.WriteFile(certFile, chain, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := CA(context.Background(), args, &out, &errb)
		return code, out.String() + errb.String()
	}
	noToken := filepath.Join(t.TempDir(), "none")
	root := filepath.Join(caDir, "root-cert.pem")
	const id = "spiffe://cluster.local/ns/default/sa/reviews"

	otherCert, otherKey := certFiles("default", "productpage")
	if code, out := run("revoke", "--monitoring-addr", mon, "--token-file", noToken, "--ca-cert", root,
		"--cert", otherCert, "--key", otherKey, id); code == 0 || !strings.Contains(out, "403") || !strings.Contains(out, "productpage") {
		t.Fatalf("revoke with a non-admin certificate: %d %s", code, out)
	}
	adminCert, adminKey := certFiles("istio-system", "mast-admin")
	if code, out := run("revoke", "--monitoring-addr", mon, "--token-file", noToken, "--ca-cert", root,
		"--cert", adminCert, "--key", adminKey, "--reason", "key leaked", id); code != 0 || !strings.Contains(out, "revoked "+id) {
		t.Fatalf("revoke with the admin certificate: %d %s", code, out)
	}
	if code, out := run("revoked", "--monitoring-addr", mon, "--ca-cert", root, "--cert", adminCert, "--key", adminKey); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("revoked over TLS: %d %s", code, out)
	}
	if code, out := run("revoke", "--monitoring-addr", mon, "--cert", adminCert, id); code == 0 || !strings.Contains(out, "--key") {
		t.Fatalf("--cert without --key: %d %s", code, out)
	}
	if code, out := run("revoke", "--monitoring-addr", mon, "--ca-cert", adminKey, "--cert", adminCert, "--key", adminKey, id); code == 0 {
		t.Fatalf("a --ca-cert without certificates was accepted: %s", out)
	}
}
