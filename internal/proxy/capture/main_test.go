package capture

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestMainDryRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--dry-run", "-b", "9080", "-i", "10.0.0.0/8"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	cfg := DefaultConfig()
	cfg.AllInboundPorts, cfg.IncludeInboundPorts = false, []uint16{9080}
	cfg.AllOutboundCIDRs = false
	cfg.IncludeOutboundCIDRs = mustPrefixes("10.0.0.0/8")
	rules, err := Rules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, r := range rules {
		want.WriteString(r.String() + "\n")
	}
	if stdout.String() != want.String() {
		t.Errorf("dry run printed:\n%s\nwant:\n%s", stdout.String(), want.String())
	}
}

func TestMainExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"-h"}, 0, "-istio-inbound-ports"},
		{[]string{"-n", "-x", "nope"}, 2, `mast-proxy iptables: --istio-service-exclude-cidr: "nope" is not a CIDR`},
		{[]string{"-n", "--backend", "iptables"}, 2, `backend "iptables"`},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("Main(%q) = %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
}

// TestMainRunsIptables runs the install path with a Runner that fails the
// way iptables does without privileges, to check the exit code and message.
// (Real installs are tested in test/netns.)
func TestMainRunsIptables(t *testing.T) {
	var ran []string
	noPerm := func(_ context.Context, _ []byte, name string, args ...string) ([]byte, error) {
		ran = append(ran, name)
		_, err := Exec(context.Background(), nil, "sh", "-c", "echo 'iptables-save: Permission denied (you must be root)' >&2; exit 4")
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--backend", "legacy"}, &stdout, &stderr, noPerm)
	if code != 1 || !strings.Contains(stderr.String(), "removing earlier rules") || !strings.Contains(stderr.String(), "Permission denied") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if len(ran) == 0 || ran[0] != "iptables-legacy-save" {
		t.Errorf("ran %q, want iptables-legacy-save first", ran)
	}
}
