package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestDebugAdminIdentity: over TLS on the monitoring port, the client
// certificate of a configured admin identity authenticates the
// state-changing /debug endpoints without the token; other identities, no
// certificate, a revoked admin and cross-origin requests are refused, and
// plaintext (Prometheus, curl) still works on the same port.
func TestDebugAdminIdentity(t *testing.T) {
	caDir := t.TempDir()
	secure := freePort(t)
	const admin = "spiffe://cluster.local/ns/istio-system/sa/mast-admin"
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			ConfigDir: t.TempDir(), XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0",
			CADir: caDir, SecureXDSAddr: secure, Mesh: model.DefaultMeshConfig(),
			DebounceQuiet: 10 * time.Millisecond, DebounceMax: time.Second,
			DebugAdminIdentities: []string{admin},
			Logger:               slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:                func(_, mon net.Addr) { ready <- mon.String() },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	mon := <-ready

	c, err := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, r := range c.TrustBundle() {
		pool.AddCert(r)
	}
	client := func(cert *tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	adminCert := workloadAgent(t, secure, caDir, "istio-system", "mast-admin").Secrets().Cert
	otherCert := workloadAgent(t, secure, caDir, "default", "reviews").Secrets().Cert
	post := func(hc *http.Client, path string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "https://"+mon+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	revoked := func() string {
		resp, err := http.Get("http://" + mon + "/debug/ca/revoked")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	const revokeRatings = "/debug/ca/revoke?identity=spiffe://cluster.local/ns/default/sa/ratings"

	for name, tc := range map[string]struct {
		hc   *http.Client
		hdr  map[string]string
		want int
		says string
	}{
		"TLS, no certificate":        {client(nil), nil, http.StatusUnauthorized, "Bearer"},
		"TLS, non-admin identity":    {client(otherCert), nil, http.StatusForbidden, "spiffe://cluster.local/ns/default/sa/reviews is not an admin identity"},
		"admin, cross-origin":        {client(adminCert), map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden, "cross-origin"},
		"admin, cross-site fetch":    {client(adminCert), map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "cross-origin"},
		"non-admin with wrong token": {client(otherCert), map[string]string{"Authorization": "Bearer nope"}, http.StatusForbidden, "wrong admin token"},
	} {
		if code, body := post(tc.hc, revokeRatings, tc.hdr); code != tc.want || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %q, want %d naming %q", name, code, body, tc.want, tc.says)
		}
	}
	if got := revoked(); strings.Contains(got, "ratings") {
		t.Fatalf("a refused request revoked: %s", got)
	}
	// The admin's certificate alone is enough.
	if code, body := post(client(adminCert), revokeRatings, nil); code != http.StatusOK {
		t.Fatalf("admin certificate: %d %q, want 200", code, body)
	}
	if got := revoked(); !strings.Contains(got, "sa/ratings") {
		t.Fatalf("revoked list after the admin's request: %s", got)
	}
	// Plaintext on the same port keeps serving metrics.
	if resp, err := http.Get("http://" + mon + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("plaintext /metrics: %v %v", resp, err)
	}
	// A revoked admin identity is no longer an admin.
	tok := readToken(t, filepath.Join(caDir, DebugTokenName))
	if code, body := post(client(nil), "/debug/ca/revoke?identity="+admin, map[string]string{"Authorization": "Bearer " + tok}); code != http.StatusOK {
		t.Fatalf("revoke the admin with the token: %d %q", code, body)
	}
	if code, body := post(client(adminCert), "/debug/ca/revoke?identity=spiffe://cluster.local/ns/default/sa/details", nil); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("revoked admin: %d %q, want 401 naming the revocation", code, body)
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
