package controlplane

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/config/store"
)

// TestNewBrokerFailsClosed: mastd refuses to start a broker without
// credentials, with half a TLS configuration, or with mesh TLS and no CA.
func TestNewBrokerFailsClosed(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	os.WriteFile(creds, []byte("osb:pw\n"), 0o600)
	fs, err := store.NewFile(store.FileConfig{Dir: dir, Load: loadFile(nil)})
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
