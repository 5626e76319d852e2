package ctl

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// TestEveryCommandHasHelp runs `mast CMD --help` and `mast help CMD` for
// every command: both succeed, print the same usage to stdout, with examples.
func TestEveryCommandHasHelp(t *testing.T) {
	for _, v := range verbs() {
		for _, args := range [][]string{{v.name, "--help"}, {"help", v.name}} {
			var out, errOut bytes.Buffer
			code := Main(context.Background(), args, &out, &errOut)
			if code != ExitOK {
				t.Errorf("mast %s: exit %d, want 0; stderr:\n%s", strings.Join(args, " "), code, errOut.String())
			}
			s := out.String()
			if !strings.HasPrefix(s, "Usage: mast "+v.name) || !strings.Contains(s, "\nExamples:\n  mast "+v.name) {
				t.Errorf("mast %s: help lacks usage or an example:\n%s", strings.Join(args, " "), s)
			}
		}
	}
	// Subcommands: their own usage and examples, by --help and by `mast help`.
	for _, sub := range []struct{ args, usage, example string }{
		{"x authz check", "Usage: mast x authz check PROXY", "mast x authz check ratings-v1"},
		{"manifest generate", "Usage: mast manifest generate", "mast manifest generate |"},
		{"proxy-config cluster", "Usage: mast proxy-config cluster|", "mast proxy-config cluster productpage-v1"},
		{"ca revoke", "Usage: mast ca revoke", "mast ca revoke --reason"},
	} {
		for _, args := range [][]string{append(strings.Fields(sub.args), "--help"), append([]string{"help"}, strings.Fields(sub.args)...)} {
			var out, errOut bytes.Buffer
			code := Main(context.Background(), args, &out, &errOut)
			if s := out.String(); code != ExitOK || !strings.HasPrefix(s, sub.usage) || !strings.Contains(s, "\nExamples:\n  "+sub.example) {
				t.Errorf("mast %s: exit %d, want 0, usage %q and example %q:\n%s%s", strings.Join(args, " "), code, sub.usage, sub.example, s, errOut.String())
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"apply", "--no-such-flag"}, &out, &errOut); code != ExitUsage ||
		!strings.Contains(errOut.String(), "Run `mast apply --help`") {
		t.Errorf("a bad flag: exit %d, stderr %q; want 2 and a pointer to --help", code, errOut.String())
	}
}

// TestApplyWarnsAboutFindings applies a route to a subset that no
// DestinationRule defines: the apply succeeds and says so.
func TestApplyWarnsAboutFindings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	if _, err := localmesh.Reset(dir); err != nil {
		t.Fatal(err)
	}
	vs := filepath.Join(t.TempDir(), "vs.yaml")
	os.WriteFile(vs, []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
`), 0o644)
	var out, errOut bytes.Buffer
	if code := Apply([]string{"--config", dir, "-f", vs}, &out, &errOut); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "virtualservice/reviews (namespace default) created") {
		t.Errorf("stdout: %s", out.String())
	}
	if !strings.Contains(errOut.String(), "Warning: ") || !strings.Contains(errOut.String(), `v9`) {
		t.Errorf("no warning about subset v9:\n%s", errOut.String())
	}
	// Applying it again introduces nothing new: no warning.
	errOut.Reset()
	Apply([]string{"--config", dir, "-f", vs}, &out, &errOut)
	if strings.Contains(errOut.String(), "v9") {
		t.Errorf("second apply warns again:\n%s", errOut.String())
	}
	// mast reset takes it away again.
	changes, err := localmesh.Reset(dir)
	if err != nil || len(changes) != 1 || !strings.HasPrefix(changes[0], "removed ") {
		t.Errorf("reset: %v %v", changes, err)
	}
}

// TestAnalyzeExitCodes: errors give istioctl's 79, a clean configuration 0,
// and -o json is a JSON array.
func TestAnalyzeExitCodes(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Analyze([]string{"-o", "json", "-f", "../analyze/testdata/corpus/vs-destinations.yaml"}, &out, &errOut)
	if code != ExitAnalyze || !strings.HasPrefix(out.String(), "[") || !strings.Contains(out.String(), `"code": "IST0112"`) {
		t.Errorf("exit %d, output:\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code = Analyze([]string{"--failure-threshold", "Error", "../../samples/bookinfo/networking/virtual-service-reviews-v3.yaml",
		"-f", "../../samples/bookinfo/config"}, &out, &errOut)
	if code != ExitOK {
		t.Errorf("Bookinfo: exit %d, output:\n%s%s", code, out.String(), errOut.String())
	}
}

// TestCompletion: each shell's script loads in that shell when it is installed.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out, errOut bytes.Buffer
		if code := Completion([]string{sh}, &out, &errOut); code != ExitOK || !strings.Contains(out.String(), "proxy-status") {
			t.Errorf("%s: exit %d\n%s%s", sh, code, out.String(), errOut.String())
		}
		if sh != "bash" {
			continue
		}
		if _, err := exec.LookPath("bash"); err != nil {
			t.Log("bash not installed; script not loaded")
			continue
		}
		cmd := exec.Command("bash", "-c", out.String()+"\nCOMP_WORDS=(mast proxy-c); COMP_CWORD=1; _mast; echo ${COMPREPLY[@]}")
		b, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(b)) != "proxy-config" {
			t.Errorf("bash completion of 'mast proxy-c': %q %v", b, err)
		}
	}
}
