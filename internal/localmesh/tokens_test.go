package localmesh

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/token"
)

// TestPlanMTLSIssuesTokens: with mTLS every proxy (sidecars and the
// gateway) gets the agent's flags and a bootstrap token for its own
// identity, which the mesh's CA accepts; the applications get none.
func TestPlanMTLSIssuesTokens(t *testing.T) {
	dir := t.TempDir()
	opts := Options{XDSAddr: "127.0.0.1:15010", GatewayIP: "127.0.0.1", Bookinfo: true, MTLS: true,
		SecureXDSAddr: "127.0.0.1:15012", CADir: filepath.Join(dir, "ca"), TokenDir: filepath.Join(dir, "tokens")}
	procs, err := Plan(bookinfoSnapshot(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := IssueTokens(opts, "cluster.local", procs); err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(ca.Config{Dir: opts.CADir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := ca.FileStore{Dir: opts.CADir}.Load()
	if err != nil {
		t.Fatal(err)
	}
	key, err := token.ParseKeyPEM(st.TokenKey)
	if err != nil {
		t.Fatal(err)
	}
	proxies := 0
	for _, p := range procs {
		args := strings.Join(p.Args, " ")
		if p.Program != "mast-proxy" {
			if p.Identity != (Identity{}) || strings.Contains(args, "--token-file") {
				t.Errorf("%s is not a proxy but gets an identity", p.Name)
			}
			continue
		}
		proxies++
		if !strings.Contains(args, "--ca-addr 127.0.0.1:15012") || !strings.Contains(args, "--ca-root-file "+filepath.Join(opts.CADir, "root-cert.pem")) {
			t.Errorf("%s: agent flags missing: %s", p.Name, args)
		}
		i := slices.Index(p.Args, "--token-file")
		fi, err := os.Stat(p.Args[i+1])
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: token file %v mode %v", p.Name, err, fi)
		}
		b, _ := os.ReadFile(p.Args[i+1])
		claims, err := token.Verify(strings.TrimSpace(string(b)), key, "cluster.local", time.Now())
		if err != nil {
			t.Fatalf("%s: token does not verify: %v", p.Name, err)
		}
		want, _ := c.WorkloadID(p.Identity.Namespace, p.Identity.ServiceAccount)
		if claims.Subject != want {
			t.Errorf("%s: token for %s, want %s", p.Name, claims.Subject, want)
		}
	}
	if proxies != 7 {
		t.Errorf("%d proxies, want 6 sidecars and the gateway", proxies)
	}
	if gw := procs[len(procs)-1]; gw.Identity != (Identity{"istio-system", gatewayServiceAccount}) {
		t.Errorf("gateway identity %+v", gw.Identity)
	}
}
