package localmesh

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
	bookinfoconfig "github.com/mast-mesh/mast/samples/bookinfo/config"
)

func bookinfoSnapshot(t *testing.T) *config.Snapshot {
	t.Helper()
	var all []config.Resource
	entries, _ := fs.ReadDir(bookinfoconfig.Files, ".")
	for _, e := range entries {
		b, _ := fs.ReadFile(bookinfoconfig.Files, e.Name())
		rs, problems := config.Load(e.Name(), b)
		if problems.HasErrors() {
			t.Fatalf("Bookinfo's own configuration has errors: %v", problems)
		}
		all = append(all, rs...)
	}
	return config.NewSnapshot(all)
}

func TestPlanBookinfo(t *testing.T) {
	procs, err := Plan(bookinfoSnapshot(t), Options{XDSAddr: "127.0.0.1:15010", GatewayIP: "127.0.0.1", Bookinfo: true})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Proc{}
	for _, p := range procs {
		byName[p.Name] = p
	}
	if len(procs) != 13 {
		t.Fatalf("got %d processes, want 6 applications, 6 sidecars and a gateway: %v", len(procs), procs)
	}
	sc := byName["reviews-v2-sidecar"]
	if sc.ProxyID != "sidecar~127.0.1.4~reviews-v2.default~default.svc.cluster.local" || sc.Admin != "127.0.1.4:15000" {
		t.Errorf("reviews-v2 sidecar: %+v", sc)
	}
	if !strings.Contains(strings.Join(sc.Args, " "), "--labels app=reviews,version=v2") {
		t.Errorf("reviews-v2 sidecar args lack its labels: %v", sc.Args)
	}
	app := byName["reviews-v2"]
	if strings.Join(app.Args, " ") != "--service reviews --version v2 --addr 127.0.0.1:19084 --instance reviews-v2" {
		t.Errorf("reviews-v2 application args: %v", app.Args)
	}
	if app.Env[0] != "HTTP_PROXY=http://127.0.1.4:15001" {
		t.Errorf("reviews-v2 application env: %v", app.Env)
	}
	if gw := byName["istio-ingressgateway"]; !strings.HasPrefix(gw.ProxyID, "router~127.0.0.1~") {
		t.Errorf("gateway: %+v", gw)
	}
	// A gateway serving on every interface keeps its admin on loopback.
	procs, _ = Plan(bookinfoSnapshot(t), Options{GatewayIP: "0.0.0.0"})
	for _, p := range procs {
		if p.Name == "istio-ingressgateway" && (p.Admin != "127.0.0.1:15000" || !strings.Contains(strings.Join(p.Args, " "), "--admin-addr 127.0.0.1:15000")) {
			t.Errorf("--gateway-ip 0.0.0.0: gateway admin %q, args %v", p.Admin, p.Args)
		}
	}
	// Without Bookinfo (the user's own configuration), only proxies run.
	procs, _ = Plan(bookinfoSnapshot(t), Options{GatewayIP: "127.0.0.1"})
	for _, p := range procs {
		if p.Program != "mast-proxy" {
			t.Errorf("without Bookinfo, plan starts %s (%s)", p.Name, p.Program)
		}
	}
}

const twoRules = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: default}
spec:
  host: a
---
# keep this comment
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b, namespace: default}
spec:
  host: b
`

func TestApplyReplacesByKey(t *testing.T) {
	dir, in := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(twoRules), 0o644)
	newB := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: b, namespace: default}\nspec:\n  host: b\n  subsets: [{name: v1, labels: {version: v1}}]\n"
	os.WriteFile(filepath.Join(in, "b.yaml"), []byte(newB), 0o644)
	newC := strings.ReplaceAll(newB, "name: b,", "name: c,")
	os.WriteFile(filepath.Join(in, "c.yaml"), []byte(newC), 0o644)

	changes, err := Apply(dir, []string{in})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range changes {
		got[c.Key.Name] = c.Action
	}
	if got["b"] != "configured" || got["c"] != "created" {
		t.Fatalf("changes: %v", changes)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "rules.yaml"))
	if !strings.Contains(string(b), "name: a,") || !strings.Contains(string(b), "subsets: [{name: v1") || strings.Count(string(b), "kind:") != 2 {
		t.Fatalf("rules.yaml after apply:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "applied", "destinationrule-default-c.yaml")); err != nil {
		t.Fatal(err)
	}
	// Applying again changes nothing.
	changes, _ = Apply(dir, []string{in})
	for _, c := range changes {
		if c.Action != "unchanged" {
			t.Errorf("second apply: %v", c)
		}
	}
	// Deleting removes b from the shared file and c's file entirely.
	if _, err := Delete(dir, []string{in}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "rules.yaml"))
	if strings.Contains(string(b), "name: b,") || !strings.Contains(string(b), "name: a,") {
		t.Fatalf("rules.yaml after delete:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "applied", "destinationrule-default-c.yaml")); !os.IsNotExist(err) {
		t.Fatalf("c's file after delete: %v", err)
	}
}

func TestApplyRefusesInvalid(t *testing.T) {
	dir, in := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(in, "bad.yaml"), []byte("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec:\n  hots: x\n"), 0o644)
	_, err := Apply(dir, []string{in})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), "hots") {
		t.Fatalf("err = %v, want the validator's message naming the file and field", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("an invalid apply wrote %v", entries)
	}
}

func TestCommandPrefersOwnBinaries(t *testing.T) {
	p := Proc{Program: "mast-proxy", Args: []string{"--x"}}
	cfg := Config{Executable: "/bin/mast"}
	if got := strings.Join(command(cfg, p), " "); got != "/bin/mast __run mast-proxy --x" {
		t.Errorf("without sibling binaries: %q", got)
	}
	cfg.Programs = map[string]string{"mast-proxy": "/bin/mast-proxy"}
	if got := strings.Join(command(cfg, p), " "); got != "/bin/mast-proxy --x" {
		t.Errorf("with a sibling binary: %q", got)
	}
}
