package crdgen

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/crds.yaml")

const crdsFile = "../../../deploy/crds.yaml"

// TestCRDsUpToDate fails when deploy/crds.yaml differs from what the
// generator makes of istio.io/api (regenerate with -update).
func TestCRDsUpToDate(t *testing.T) {
	got, err := YAML()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(crdsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(crdsFile)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/kube/crdgen -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("deploy/crds.yaml is stale: run go test ./internal/kube/crdgen -update")
	}
}
