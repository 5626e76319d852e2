package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildMast builds this command into a temporary directory.
func buildMast(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mast")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runMast(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestMastValidate(t *testing.T) {
	bin := buildMast(t)
	const testdata = "../../internal/config/testdata"
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	err := os.WriteFile(bad, []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 80
    - destination:
        host: reviews
        subset: v2
      weight: 10
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // substrings of stdout, in order
		notWant  []string
	}{
		{
			name:     "Bookinfo's configuration is valid",
			args:     []string{"validate", "-f", "../../samples/bookinfo/config"},
			wantCode: 0,
			want:     []string{"ok: 22 valid resources, 0 errors, 0 warnings"},
			notWant:  []string{": error: "},
		},
		{
			name:     "an error fails, naming file, line, resource and field",
			args:     []string{"validate", "-f", bad},
			wantCode: 1,
			want: []string{bad + ":9: error: VirtualService/default/reviews: spec.http[0].route: weights sum to 90, want 100",
				"invalid: 0 valid resources, 1 error, 0 warnings"},
		},
		{
			name:     "warnings alone do not fail",
			args:     []string{"validate", "-f", testdata + "/warn/missing-gateway.yaml"},
			wantCode: 0,
			want:     []string{`warning: VirtualService/default/bookinfo: spec.gateways[0]: gateway "bookinfo-gateway"`, "ok: 1 valid resource, 0 errors, 1 warning"},
		},
		{
			name:     "comma lists and repeated -f, sorted by file and line",
			args:     []string{"validate", "-f", bad + "," + testdata + "/invalid/vs-bad-regex.yaml", "-f", testdata + "/invalid/dr-mutual-no-cert.yaml"},
			wantCode: 1,
			want: []string{"dr-mutual-no-cert.yaml:8: error", "dr-mutual-no-cert.yaml:8: error", "vs-bad-regex.yaml:11: error",
				bad + ":9: error", "invalid: 0 valid resources, 4 errors, 0 warnings"},
		},
		{
			name:     "a missing file is an error",
			args:     []string{"validate", "-f", "no/such/file.yaml"},
			wantCode: 1,
			want:     []string{"no/such/file.yaml: error: ", "invalid: 0 valid resources, 1 error"},
		},
		{name: "no paths is a usage error", args: []string{"validate"}, wantCode: 2},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runMast(t, bin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("stdout lacks %q (in order):\n%s", w, out)
					break
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("stdout contains %q:\n%s", w, out)
				}
			}
		})
	}
}
