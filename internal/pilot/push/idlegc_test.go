package push

import (
	"context"
	"testing"
)

func TestCollectNow(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		name    string
		s       HeapStats
		perPush uint64
		want    bool
	}{
		// live 100 MB, goal 200 MB: the trigger is taken at 160 MB.
		{"far from the trigger", HeapStats{Heap: 120 * mb, Live: 100 * mb, Goal: 200 * mb}, 5 * mb, false},
		{"two pushes short of it", HeapStats{Heap: 150 * mb, Live: 100 * mb, Goal: 200 * mb}, 5 * mb, true},
		{"just beyond two pushes", HeapStats{Heap: 149 * mb, Live: 100 * mb, Goal: 200 * mb}, 5 * mb, false},
		{"big pushes", HeapStats{Heap: 120 * mb, Live: 100 * mb, Goal: 200 * mb}, 25 * mb, true},
		{"no goal (GOGC=off)", HeapStats{Heap: 500 * mb, Live: 100 * mb, Goal: 100 * mb}, 5 * mb, false},
		{"nothing allocated", HeapStats{Heap: 199 * mb, Live: 100 * mb, Goal: 200 * mb}, 0, false},
	} {
		if got := collectNow(tc.s, tc.perPush); got != tc.want {
			t.Errorf("%s: collectNow = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Run collects after an Idle whose push brought the heap near the
// trigger, and measures the next push from after that collection.
func TestIdleGCCollectsNearTheTrigger(t *testing.T) {
	const mb = 1 << 20
	stats := make(chan HeapStats) // a send returns once Run has taken the reading
	collected := make(chan struct{}, 1)
	g := NewIdleGC()
	g.read = func() HeapStats { return <-stats }
	g.collect = func() { collected <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	stats <- HeapStats{Allocs: 1000 * mb} // Run's first reading

	// A push of 10 MB with the heap far from the trigger: no collection.
	g.Idle()
	stats <- HeapStats{Allocs: 1010 * mb, Heap: 120 * mb, Live: 100 * mb, Goal: 200 * mb}
	// A push of 10 MB that leaves less than two more to the trigger.
	g.Idle()
	stats <- HeapStats{Allocs: 1020 * mb, Heap: 145 * mb, Live: 100 * mb, Goal: 200 * mb}
	<-collected
	stats <- HeapStats{Allocs: 1021 * mb} // read after the collection
	// The next push is measured from 1021 MB: 4 MB, far from the trigger.
	g.Idle()
	stats <- HeapStats{Allocs: 1025 * mb, Heap: 110 * mb, Live: 100 * mb, Goal: 200 * mb}
	g.Idle() // taken once the previous reading was handled
	stats <- HeapStats{Allocs: 1026 * mb, Heap: 111 * mb, Live: 100 * mb, Goal: 200 * mb}
	select {
	case <-collected:
		t.Fatal("collected far from the trigger")
	default:
	}
}
