package store

import (
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
)

// TestIndexMatchesMerge changes random files one batch at a time (keys
// shared between files and repeated within one, files emptied and removed)
// and checks the incremental index against a full merge after every batch:
// same snapshot, conflicts and provided keys.
func TestIndexMatchesMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	kinds := []config.Kind{config.ServiceEntry, config.WorkloadEntry}
	files := map[string][]config.Resource{}
	x := newIndex()
	log := slog.New(slog.DiscardHandler)
	for step := range 400 {
		changed := map[string][]config.Resource{}
		for range 1 + rng.IntN(3) {
			path := fmt.Sprintf("/c/f%02d.yaml", rng.IntN(12))
			var rs []config.Resource
			for i := range rng.IntN(5) {
				var r config.Resource
				r.Kind = kinds[rng.IntN(len(kinds))]
				r.Namespace, r.Name = "default", fmt.Sprintf("r%d", rng.IntN(15))
				r.Source = config.Source{File: path, Line: i + 1}
				r.Labels = map[string]string{"step": fmt.Sprint(step)}
				rs = append(rs, r)
			}
			changed[path] = rs
			if len(rs) == 0 && rng.IntN(2) == 0 {
				delete(files, path)
			} else {
				files[path] = rs
			}
		}
		x.apply(changed, log)
		want := merge(files)
		if !snapshotsEqual(x.snap, want.snap) {
			t.Fatalf("step %d: index snapshot (%d resources) differs from merge (%d)", step, x.snap.Len(), want.snap.Len())
		}
		if got := x.conflictList(); !slices.EqualFunc(got, want.conflicts, conflictEqual) {
			t.Fatalf("step %d: conflicts %v, merge %v", step, got, want.conflicts)
		}
		for path := range files {
			if !slices.Equal(x.provided[path], want.provided[path]) {
				t.Fatalf("step %d: %s provides %v, merge %v", step, path, x.provided[path], want.provided[path])
			}
		}
		for path := range x.provided {
			if _, ok := files[path]; !ok && len(x.provided[path]) > 0 {
				t.Fatalf("step %d: removed file %s still provides %v", step, path, x.provided[path])
			}
		}
		if !maps.EqualFunc(x.providedStr, stringsOf(x.provided), slices.Equal) {
			t.Fatalf("step %d: provided strings out of date", step)
		}
	}
}

func stringsOf(m map[string][]config.Key) map[string][]string {
	out := map[string][]string{}
	for p, ks := range m {
		out[p] = keyStrings(ks)
	}
	return out
}
