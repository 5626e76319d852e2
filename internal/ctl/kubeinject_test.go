package ctl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubeInject: the command prints what internal/inject's golden file
// holds for Istio's Bookinfo, and refuses a pod it cannot honour with the
// annotation's name.
func TestKubeInject(t *testing.T) {
	const bookinfo = "../../../shared/compat/istio/bookinfo/platform/kube/bookinfo.yaml"
	if _, err := os.Stat(bookinfo); err != nil {
		t.Skipf("Istio's Bookinfo corpus is absent (%v); it lives in ../shared/compat/istio", err)
	}
	var out, errb bytes.Buffer
	if code := KubeInject([]string{"-f", bookinfo}, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want, err := os.ReadFile("../inject/testdata/bookinfo.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Error("mast kube-inject output differs from internal/inject/testdata/bookinfo.golden.yaml")
	}

	bad := filepath.Join(t.TempDir(), "pod.yaml")
	os.WriteFile(bad, []byte(`apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations:
    traffic.sidecar.istio.io/excludeOutboundPorts: "5432,postgres"
spec:
  containers:
  - name: app
    image: app
`), 0o644)
	out.Reset()
	errb.Reset()
	if code := KubeInject([]string{"-f", bad}, &out, &errb); code != ExitFailure || !strings.Contains(errb.String(), "Pod/p") ||
		!strings.Contains(errb.String(), "postgres") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
