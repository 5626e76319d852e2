package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/config/store"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestNewBrokerFailsClosed: mastd refuses to start a broker without
// credentials, with half a TLS configuration, or with mesh TLS and no CA.
func TestNewBrokerFailsClosed(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	os.WriteFile(creds, []byte("osb:pw\n"), 0o600)
	fs, err := store.NewFile(store.FileConfig{Dir: dir, Load: loadFile(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		bc   BrokerConfig
		want string
	}{
		{"no state dir", BrokerConfig{Addr: "127.0.0.1:0", CredentialsFile: creds}, "--broker-dir"},
		{"no credentials", BrokerConfig{Addr: "127.0.0.1:0", StateDir: dir}, "credentials"},
		{"both credentials and token", BrokerConfig{Addr: "127.0.0.1:0", StateDir: dir, CredentialsFile: creds, TokenFile: creds}, "not both"},
		{"credentials without a password", BrokerConfig{Addr: "127.0.0.1:0", StateDir: dir, CredentialsFile: filepath.Join(dir, "bad")}, "username:password"},
		{"half TLS", BrokerConfig{Addr: "127.0.0.1:0", StateDir: dir, CredentialsFile: creds, TLSCertFile: creds}, "go together"},
		{"mesh TLS without CA", BrokerConfig{Addr: "127.0.0.1:0", StateDir: dir, CredentialsFile: creds, TLSMesh: true}, "--ca-dir"},
	}
	os.WriteFile(filepath.Join(dir, "bad"), []byte("osb\n"), 0o600)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := newBroker(Config{ConfigDir: dir, Broker: c.bc}, fs, nil, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
	s, err := newBroker(Config{ConfigDir: dir, Broker: BrokerConfig{Addr: "127.0.0.1:0", StateDir: dir, CredentialsFile: creds}}, fs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.lis.Close()
	s.b.Close()
}

// TestBrokerServesTLSFromMeshCA: with --broker-tls-mesh the broker serves
// HTTPS with a certificate from the mesh CA that clients trusting the
// mesh root accept, and still requires its credentials.
func TestBrokerServesTLSFromMeshCA(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	os.WriteFile(creds, []byte("osb:pw\n"), 0o600)
	fs, err := store.NewFile(store.FileConfig{Dir: dir, Load: loadFile(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(ca.Config{Dir: filepath.Join(dir, "ca"), TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ConfigDir: dir, Mesh: model.DefaultMeshConfig(), Broker: BrokerConfig{Addr: "127.0.0.1:0", StateDir: dir, CredentialsFile: creds, TLSMesh: true}}
	s, err := newBroker(cfg, fs, authority, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	defer func() { cancel(); <-done }()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(authority.TrustBundlePEM())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	get := func(user, pass string) int {
		req, _ := http.NewRequest("GET", "https://"+s.lis.Addr().String()+"/v2/catalog", nil)
		req.SetBasicAuth(user, pass)
		req.Header.Set("X-Broker-API-Version", "2.17")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("HTTPS to the broker: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("osb", "pw"); got != 200 {
		t.Fatalf("catalog over TLS: %d", got)
	}
	if got := get("osb", "wrong"); got != 401 {
		t.Fatalf("wrong password over TLS: %d", got)
	}
	// A client that does not trust the mesh root refuses the certificate.
	if _, err := http.Get("https://" + s.lis.Addr().String() + "/v2/catalog"); err == nil {
		t.Fatal("a client without the mesh root accepted the broker's certificate")
	}
}
