package store

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
)

const virtualService = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: [a.example.com]
  http: [{route: [{destination: {host: a.example.com}}]}]
`

// TestFileUpdateReadsNamedFiles drives update (what Run does with a burst of
// file events) on a store without a watcher: it applies exactly the named
// files and directories, so a change made without an event (b.yaml) waits
// for the periodic rescan, and it reports the kinds that changed.
func TestFileUpdateReadsNamedFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeInPlace(t, a, serviceEntry("a", "a1.example.com"))
	writeInPlace(t, b, serviceEntry("b", "b1.example.com"))
	writeInPlace(t, filepath.Join(dir, "sub", "c.yaml"), serviceEntry("c", "c1.example.com"))
	var updates []Update
	f, err := NewFile(FileConfig{Dir: dir, Load: decode, OnUpdate: func(u Update) { updates = append(updates, u) }})
	if err != nil {
		t.Fatal(err)
	}
	kinds := func(ks ...config.Kind) map[config.Kind]struct{} {
		m := map[config.Kind]struct{}{}
		for _, k := range ks {
			m[k] = struct{}{}
		}
		return m
	}
	tests := []struct {
		name   string
		change func()
		dirty  []string
		want   map[string]string // ServiceEntry name -> host ("" absent)
		kinds  map[config.Kind]struct{}
	}{
		{
			name: "named file re-read, unnamed change not",
			change: func() {
				writeInPlace(t, a, serviceEntry("a", "a2.example.com"))
				writeInPlace(t, b, serviceEntry("b", "b2.example.com"))
			},
			dirty: []string{a},
			want:  map[string]string{"a": "a2.example.com", "b": "b1.example.com", "c": "c1.example.com"},
			kinds: kinds(config.ServiceEntry),
		},
		{
			name: "only the kind that changed within a file",
			change: func() {
				writeInPlace(t, b, serviceEntry("b", "b1.example.com")+"---\n"+workloadEntry("w", "10.0.0.1"))
			},
			dirty: []string{b},
			want:  map[string]string{"a": "a2.example.com", "b": "b1.example.com", "c": "c1.example.com"},
			kinds: kinds(config.WorkloadEntry),
		},
		{
			name:   "workload moved",
			change: func() { writeInPlace(t, b, serviceEntry("b", "b1.example.com")+"---\n"+workloadEntry("w", "10.0.0.2")) },
			dirty:  []string{b},
			want:   map[string]string{"a": "a2.example.com", "b": "b1.example.com", "c": "c1.example.com"},
			kinds:  kinds(config.WorkloadEntry),
		},
		{
			name:   "hidden, temporary and non-config files are ignored",
			change: func() { writeInPlace(t, filepath.Join(dir, "README.md"), "x") },
			dirty:  []string{filepath.Join(dir, ".a.yaml.tmp"), filepath.Join(dir, "a.yaml~"), filepath.Join(dir, "README.md"), filepath.Join(dir, "4913")},
			want:   map[string]string{"a": "a2.example.com", "b": "b1.example.com", "c": "c1.example.com"},
		},
		{
			name:   "new kind in a new file",
			change: func() { writeInPlace(t, filepath.Join(dir, "vs.yaml"), virtualService) },
			dirty:  []string{filepath.Join(dir, "vs.yaml")},
			want:   map[string]string{"a": "a2.example.com", "b": "b1.example.com", "c": "c1.example.com"},
			kinds:  kinds(config.VirtualService),
		},
		{
			name:   "deleted file",
			change: func() { must(t, os.Remove(a)) },
			dirty:  []string{a},
			want:   map[string]string{"a": "", "b": "b1.example.com", "c": "c1.example.com"},
			kinds:  kinds(config.ServiceEntry),
		},
		{
			name: "new directory is walked",
			change: func() {
				writeInPlace(t, filepath.Join(dir, "new", "deep", "d.yaml"), serviceEntry("d", "d1.example.com"))
			},
			dirty: []string{filepath.Join(dir, "new")},
			want:  map[string]string{"b": "b1.example.com", "c": "c1.example.com", "d": "d1.example.com"},
			kinds: kinds(config.ServiceEntry),
		},
		{
			name:   "removed directory is forgotten",
			change: func() { must(t, os.RemoveAll(filepath.Join(dir, "sub"))) },
			dirty:  []string{filepath.Join(dir, "sub")},
			want:   map[string]string{"b": "b1.example.com", "c": "", "d": "d1.example.com"},
			kinds:  kinds(config.ServiceEntry),
		},
		{
			name: "Kubernetes ..data swap rescans everything",
			change: func() {
				writeInPlace(t, b, serviceEntry("b", "b2.example.com")) // no event for this one
				writeInPlace(t, filepath.Join(dir, "..data"), "")
			},
			dirty: []string{filepath.Join(dir, "..data")},
			want:  map[string]string{"b": "b2.example.com", "d": "d1.example.com"},
			kinds: kinds(config.ServiceEntry, config.WorkloadEntry),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			updates = nil
			tt.change()
			req := scanRequest{}
			for _, p := range tt.dirty {
				req.add(p)
			}
			if err := f.update(req); err != nil {
				t.Fatal(err)
			}
			s := f.Snapshot()
			for name, host := range tt.want {
				if got := hostOf(s, name); got != host {
					t.Errorf("ServiceEntry %s: host %q, want %q", name, got, host)
				}
			}
			switch {
			case tt.kinds == nil && len(updates) > 0:
				t.Errorf("got %d updates, want none", len(updates))
			case tt.kinds != nil && len(updates) != 1:
				t.Errorf("got %d updates, want 1", len(updates))
			case tt.kinds != nil && !maps.Equal(updates[0].Kinds, tt.kinds):
				t.Errorf("kinds %v, want %v", slices.Collect(maps.Keys(updates[0].Kinds)), slices.Collect(maps.Keys(tt.kinds)))
			case tt.kinds != nil && (updates[0].New != s || updates[0].Old == s):
				t.Error("update does not carry the old and the new snapshot")
			}
		})
	}
}

func workloadEntry(name, addr string) string {
	return `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ` + name + `, namespace: default}
spec:
  address: ` + addr + "\n"
}
