package push

import (
	"context"
	"runtime"
	"runtime/metrics"
)

// IdleGC collects garbage between pushes rather than during them. A push
// to a thousand proxies allocates a few MB and a GC cycle of mastd's heap
// costs ~100 ms of CPU: the push during which the heap reaches the GC
// trigger pays it (the one slow change in ten that cpbench saw, fan-out
// 2-3x the others). Told that a fan-out is complete (Idle, from
// ads.Config.Idle), IdleGC starts the cycle at once when the next push
// might reach the trigger, so that it runs while mastd is otherwise idle
// (the GC's idle workers take the free CPUs) and before the next push's
// debounce window ends. Under churn that leaves no idle moment, Idle is
// never called and the runtime collects as it would anyway.
type IdleGC struct {
	wake    chan struct{}
	read    func() HeapStats // reads the runtime's figures; tests replace it
	collect func()           // runtime.GC; tests replace it
}

// HeapStats are the runtime's heap figures IdleGC decides on, in bytes.
type HeapStats struct {
	Allocs uint64 // allocated since the process started
	Heap   uint64 // heap objects now, live or not yet swept
	Live   uint64 // live heap marked by the last GC cycle
	Goal   uint64 // heap size at which the current cycle should end
}

// NewIdleGC returns an IdleGC; call Run to start it.
func NewIdleGC() *IdleGC {
	return &IdleGC{wake: make(chan struct{}, 1), read: readHeapStats, collect: runtime.GC}
}

// Idle says that a fan-out is complete. It never blocks.
func (g *IdleGC) Idle() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Run handles Idle calls until ctx is done.
func (g *IdleGC) Run(ctx context.Context) {
	last := g.read().Allocs
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
		}
		s := g.read()
		perPush := s.Allocs - last // the last push and what led to it
		last = s.Allocs
		if collectNow(s, perPush) {
			g.collect()
			last = g.read().Allocs
		}
	}
}

// collectNow reports whether a push allocating perPush might start a GC
// cycle. The runtime starts one once the heap has used at least 70% of
// its runway from the live heap to the goal (its pacer's lowest
// trigger), counting as used the free space of the spans each P holds
// for allocation, which Heap (objects) does not: so the trigger is taken
// at 60% of the runway, and a push is counted twice. (At 70% a cycle
// still started in one of 30 cpbench endpoint changes.) Without a goal
// above the live heap (GOGC=off, no memory limit) there is nothing to do.
func collectNow(s HeapStats, perPush uint64) bool {
	if s.Goal <= s.Live || perPush == 0 {
		return false
	}
	trigger := s.Live + (s.Goal-s.Live)*6/10
	return s.Heap+2*perPush >= trigger
}

func readHeapStats() HeapStats {
	ms := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/heap/goal:bytes"},
	}
	metrics.Read(ms)
	v := func(i int) uint64 {
		if ms[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return ms[i].Value.Uint64()
	}
	return HeapStats{Allocs: v(0), Heap: v(1), Live: v(2), Goal: v(3)}
}
