package localmesh

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResetConfigDir: `mast up` without --keep-config starts from
// Bookinfo's defaults. What the last run applied moves to config.previous
// (and is named), a pristine directory stays as it is, and --keep-config's
// seeding keeps the user's files beside Bookinfo's.
func TestResetConfigDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	if moved, err := resetConfigDir(dir, PlatformFiles); err != nil || moved != "" {
		t.Fatalf("first run: moved %q, %v", moved, err)
	}
	extra := filepath.Join(dir, "vs.yaml")
	const vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}\n"
	if err := os.WriteFile(extra, []byte(vs), 0o644); err != nil {
		t.Fatal(err)
	}
	// --keep-config: the file stays, Bookinfo's stay beside it.
	if err := seedBookinfo(dir, PlatformFiles); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(extra); err != nil {
		t.Fatalf("--keep-config lost the applied file: %v", err)
	}
	// Without it: the applied file is gone from the config in force, kept in config.previous.
	moved, err := resetConfigDir(dir, PlatformFiles)
	if err != nil || moved != dir+".previous" {
		t.Fatalf("second run: moved %q, %v; want %s", moved, err, dir+".previous")
	}
	if _, err := os.Stat(extra); !os.IsNotExist(err) {
		t.Errorf("the last run's VirtualService is still in force: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(moved, "vs.yaml")); err != nil || string(b) != vs {
		t.Errorf("config.previous lacks the last run's file: %q %v", b, err)
	}
	defaults, _ := bookinfoFiles(PlatformFiles)
	if !pristine(dir, defaults) {
		t.Errorf("%s is not Bookinfo's defaults after the reset", dir)
	}
	// A pristine directory is not moved again.
	if moved, err := resetConfigDir(dir, PlatformFiles); err != nil || moved != "" {
		t.Errorf("third run on defaults: moved %q, %v", moved, err)
	}
}
