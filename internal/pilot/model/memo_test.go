package model

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// TestMemoBuildsOnce: connections woken by one push ask for the same shared
// value at once; it is built once and every caller gets that value.
func TestMemoBuildsOnce(t *testing.T) {
	pc := NewPushContext("1", DefaultMeshConfig(), config.NewSnapshot(nil), &registry.Snapshot{})
	type key struct{ n int }
	var builds atomic.Int32
	start := make(chan struct{})
	got := make([]any, 16)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			<-start
			got[i] = pc.Memo(key{1}, func() any {
				builds.Add(1)
				time.Sleep(20 * time.Millisecond) // a slow build that others arrive during
				return new(int)
			})
		})
	}
	close(start)
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Fatalf("built %d times, want once", n)
	}
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("caller %d got another value", i)
		}
	}
	if pc.Memo(key{2}, func() any { return 2 }) != 2 {
		t.Fatal("another key must build its own value")
	}
}
