package push

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// fakeClock is a manual clock. Every After call is reported on timers, so a
// test knows the debouncer has evaluated its state and gone back to waiting.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	timers  chan time.Duration
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), timers: make(chan time.Duration, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	c.mu.Unlock()
	c.timers <- d
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

type harness struct {
	t      *testing.T
	clock  *fakeClock
	d      *Debouncer
	pushes chan *model.PushRequest
	block  chan struct{} // when non-nil, each push waits for a receive from it
}

func newHarness(t *testing.T, block bool) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), pushes: make(chan *model.PushRequest, 100)}
	if block {
		h.block = make(chan struct{})
	}
	h.d = NewDebouncer(Config{Clock: h.clock, Push: func(r *model.PushRequest) {
		h.pushes <- r
		if h.block != nil {
			<-h.block
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// waitTimer waits until the debouncer armed a timer, failing if it pushed instead.
func (h *harness) waitTimer() time.Duration {
	h.t.Helper()
	select {
	case d := <-h.clock.timers:
		return d
	case r := <-h.pushes:
		h.t.Fatalf("unexpected push %+v while a timer was expected", r)
		return 0
	}
}

// waitPush waits for a push, failing if the debouncer armed a timer instead.
func (h *harness) waitPush() *model.PushRequest {
	h.t.Helper()
	select {
	case r := <-h.pushes:
		return r
	case d := <-h.clock.timers:
		h.t.Fatalf("timer %v armed while a push was expected", d)
		return nil
	}
}

func (h *harness) noPush() {
	h.t.Helper()
	select {
	case r := <-h.pushes:
		h.t.Fatalf("unexpected push %+v", r)
	default:
	}
}

func eds(hosts ...string) *model.PushRequest {
	r := &model.PushRequest{EDSHosts: map[string]struct{}{}, Reason: "eds"}
	for _, h := range hosts {
		r.EDSHosts[h] = struct{}{}
	}
	return r
}

func TestDecide(t *testing.T) {
	const q, m = 100 * time.Millisecond, 10 * time.Second
	ms := time.Millisecond
	tests := []struct {
		name                  string
		sinceFirst, sinceLast time.Duration
		due                   bool
		wait                  time.Duration
	}{
		{"fresh event waits the quiet period", 0, 0, false, q},
		{"quiet period partly over", 60 * ms, 60 * ms, false, 40 * ms},
		{"quiet period reached", 100 * ms, 100 * ms, true, 0},
		{"recent event restarts quiet period", 5 * time.Second, 10 * ms, false, 90 * ms},
		{"max delay near: wait only until it", m - 20*ms, 10 * ms, false, 20 * ms},
		{"max delay reached despite recent event", m, 0, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			due, wait := decide(tt.sinceFirst, tt.sinceLast, q, m)
			if due != tt.due || wait != tt.wait {
				t.Fatalf("decide(%v, %v) = %v, %v; want %v, %v", tt.sinceFirst, tt.sinceLast, due, wait, tt.due, tt.wait)
			}
		})
	}
}

func TestDebouncerQuietPeriod(t *testing.T) {
	h := newHarness(t, false)
	h.d.Enqueue(eds("a"))
	if d := h.waitTimer(); d != DefaultQuietPeriod {
		t.Fatalf("first timer %v, want %v", d, DefaultQuietPeriod)
	}
	h.clock.Advance(60 * time.Millisecond)
	h.d.Enqueue(eds("b")) // restarts the quiet period
	if d := h.waitTimer(); d != DefaultQuietPeriod {
		t.Fatalf("second timer %v, want %v", d, DefaultQuietPeriod)
	}
	h.clock.Advance(50 * time.Millisecond) // 110 ms after a, 50 ms after b: the stale timer fires unseen
	h.noPush()
	h.clock.Advance(50 * time.Millisecond) // 100 ms after b
	r := h.waitPush()
	if r.Full || !slices.Equal(slices.Sorted(maps.Keys(r.EDSHosts)), []string{"a", "b"}) {
		t.Fatalf("merged push = %+v, want EDS for a and b", r)
	}
}

func TestDebouncerMaxDelay(t *testing.T) {
	h := newHarness(t, false)
	const step = 90 * time.Millisecond // always inside the quiet period
	h.d.Enqueue(eds("h0"))
	h.waitTimer()
	elapsed := time.Duration(0)
	for i := 1; ; i++ {
		h.clock.Advance(step)
		elapsed += step
		if elapsed >= DefaultMaxDelay {
			// The last timer was armed for the max delay, not a quiet
			// period: advancing past it pushes with no new event. (A new
			// event here would race the push to arm the next timer.)
			r := h.waitPush()
			if len(r.EDSHosts) != 2 {
				t.Fatalf("push after %d events has hosts %v, want h0 and h", i, r.EDSHosts)
			}
			break
		}
		h.d.Enqueue(eds("h"))
		h.waitTimer()
		h.noPush()
	}
	if elapsed != 10080*time.Millisecond {
		t.Fatalf("pushed after %v, want the first step past %v", elapsed, DefaultMaxDelay)
	}
}

func TestDebouncerMerge(t *testing.T) {
	tests := []struct {
		name  string
		reqs  []*model.PushRequest
		full  bool
		hosts []string
	}{
		{"eds only", []*model.PushRequest{eds("a"), eds("b"), eds("a")}, false, []string{"a", "b"}},
		{"full wins", []*model.PushRequest{eds("a"), {Full: true, Reason: "config"}, eds("b")}, true, nil},
		{"nil is full", []*model.PushRequest{nil}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			for _, r := range tt.reqs {
				h.d.Enqueue(r)
				h.waitTimer()
			}
			h.clock.Advance(DefaultQuietPeriod)
			r := h.waitPush()
			if r.Full != tt.full {
				t.Fatalf("push = %+v, want Full=%v", r, tt.full)
			}
			if got := slices.Sorted(maps.Keys(r.EDSHosts)); !tt.full && !slices.Equal(got, tt.hosts) {
				t.Fatalf("EDSHosts = %v, want %v", got, tt.hosts)
			}
		})
	}
}

func TestDebouncerSerialPushes(t *testing.T) {
	h := newHarness(t, true)
	h.d.Enqueue(eds("a"))
	h.waitTimer()
	h.clock.Advance(DefaultQuietPeriod)
	if r := h.waitPush(); len(r.EDSHosts) != 1 {
		t.Fatalf("first push %+v", r)
	}
	// The callback is still running: these are merged, not delivered.
	h.d.Enqueue(eds("b"))
	h.d.Enqueue(eds("c"))
	h.clock.Advance(DefaultQuietPeriod)
	h.noPush()
	h.block <- struct{}{} // first push returns; b and c are already quiet
	r := h.waitPush()
	if got := slices.Sorted(maps.Keys(r.EDSHosts)); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("second push hosts %v, want [b c]", got)
	}
	h.block <- struct{}{}
}

func TestEnqueueNeverBlocks(t *testing.T) {
	// No Run loop: Enqueue must still return, merging into one pending request.
	d := NewDebouncer(Config{})
	for i := range 10000 {
		d.Enqueue(eds(string(rune('a' + i%26))))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.events != 10000 || len(d.pending.EDSHosts) != 26 {
		t.Fatalf("events=%d hosts=%d, want 10000 and 26", d.events, len(d.pending.EDSHosts))
	}
}
