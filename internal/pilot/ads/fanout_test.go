package ads

import (
	"sync"
	"testing"
	"time"
)

// fakeAfter records fanout's timers instead of starting them; a test fires
// them when it chooses.
type fakeAfter struct {
	mu    sync.Mutex
	fns   []func()
	waits []time.Duration
}

func (a *fakeAfter) after(d time.Duration, f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fns = append(a.fns, f)
	a.waits = append(a.waits, d)
}

// armed returns how many timers were started.
func (a *fakeAfter) armed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.fns)
}

// fire runs the i-th timer's function, as its expiry would.
func (a *fakeAfter) fire(t *testing.T, i int) {
	t.Helper()
	a.mu.Lock()
	if i >= len(a.fns) {
		a.mu.Unlock()
		t.Fatalf("timer %d never started (%d were)", i, len(a.fns))
	}
	f := a.fns[i]
	a.mu.Unlock()
	f()
}

// testFanout is a fanout counting its Idle calls, with fake timers.
func testFanout() (*fanout, *int, *fakeAfter) {
	idle := new(int)
	f := newFanout(func() { *idle++ }, 0)
	a := &fakeAfter{}
	f.after = a.after
	return f, idle, a
}

// The moves of Push and of a connection, as Server and conn make them.
func pushBegin(f *fanout, conns int) {
	f.begin()
	for range conns {
		f.enqueued()
	}
}
func pushEnd(f *fanout) { f.settle(f.change(true, 0), true) }

// pushed: a connection's push ended; owing +1 when its client now owes
// answers and did not, 0 when that did not change.
func pushed(f *fanout, owing int) { f.settle(f.change(true, owing), true) }

// answered: a client that owed answers has answered everything.
func answered(f *fanout) { f.settle(f.change(false, -1), false) }

// A fan-out whose clients answered before their Sends returned is complete
// when the last Send returns (what Idle meant before it waited for ACKs).
func TestFanoutCompleteWhenSentAndAnswered(t *testing.T) {
	f, idle, a := testFanout()
	pushBegin(f, 2)
	pushEnd(f)
	pushed(f, 0)
	if *idle != 0 {
		t.Fatalf("Idle called with a connection still sending")
	}
	pushed(f, 0)
	if *idle != 1 || a.armed() != 0 {
		t.Fatalf("Idle calls %d, timers %d; want 1, 0", *idle, a.armed())
	}
}

// Idle waits for the clients' answers, not for the Sends alone; once
// called, the wait's timer calls it no more.
func TestFanoutWaitsForAnswers(t *testing.T) {
	f, idle, a := testFanout()
	pushBegin(f, 2)
	pushEnd(f)
	pushed(f, 1)
	pushed(f, 1)
	if *idle != 0 {
		t.Fatalf("Idle called once the Sends returned, with two clients still to answer")
	}
	if a.armed() != 1 || a.waits[0] != DefaultIdleWait {
		t.Fatalf("timers %d (waits %v); want one of %v", a.armed(), a.waits, DefaultIdleWait)
	}
	answered(f)
	if *idle != 0 {
		t.Fatalf("Idle called with a client still to answer")
	}
	answered(f)
	if *idle != 1 {
		t.Fatalf("Idle calls %d after the last answer, want 1", *idle)
	}
	a.fire(t, 0)
	if *idle != 1 {
		t.Fatalf("Idle calls %d after the wait too, want 1", *idle)
	}
}

// A client that never answers delays Idle by the wait only, its late
// answer calls Idle no second time, and while it stays silent every
// fan-out waits for it again.
func TestFanoutWaitRunsOut(t *testing.T) {
	f, idle, a := testFanout()
	pushBegin(f, 2)
	pushEnd(f)
	pushed(f, 1) // the silent client
	pushed(f, 0) // one that answered before its Send returned
	if *idle != 0 || a.armed() != 1 {
		t.Fatalf("Idle calls %d, timers %d; want 0, 1", *idle, a.armed())
	}
	a.fire(t, 0)
	if *idle != 1 {
		t.Fatalf("Idle calls %d once the wait ran out, want 1", *idle)
	}
	a.fire(t, 0)
	if *idle != 1 {
		t.Fatalf("Idle calls %d after the timer ran twice, want 1", *idle)
	}
	pushBegin(f, 1)
	pushEnd(f)
	pushed(f, 0) // the silent client, pushed again: it still owes
	if *idle != 1 || a.armed() != 2 {
		t.Fatalf("Idle calls %d, timers %d; want 1, 2", *idle, a.armed())
	}
	answered(f) // it answers at last
	if *idle != 2 {
		t.Fatalf("Idle calls %d after the last answer, want 2", *idle)
	}
	a.fire(t, 1)
	if *idle != 2 {
		t.Fatalf("Idle calls %d after the second wait ran out too, want 2", *idle)
	}
	answered(f) // a late answer after the wait ran out (another client)
	if *idle != 2 {
		t.Fatalf("Idle calls %d after a late answer, want 2", *idle)
	}
}

// A push starting while clients still owe answers cancels the wait: Idle
// comes once the new push's Sends and every answer are in, or its own
// wait has run out.
func TestFanoutNewPushRestartsWait(t *testing.T) {
	f, idle, a := testFanout()
	pushBegin(f, 1)
	pushEnd(f)
	pushed(f, 1)
	pushBegin(f, 1) // the same connection, pushed again
	a.fire(t, 0)
	if *idle != 0 {
		t.Fatal("the first push's wait called Idle during the second push")
	}
	answered(f) // its client answers the first push while it sends the second
	pushEnd(f)
	if *idle != 0 {
		t.Fatal("Idle called with a connection still sending")
	}
	pushed(f, 1)
	if *idle != 0 || a.armed() != 2 {
		t.Fatalf("Idle calls %d, timers %d; want 0, 2", *idle, a.armed())
	}
	a.fire(t, 0)
	if *idle != 0 {
		t.Fatal("the first push's wait called Idle after the second push")
	}
	a.fire(t, 1)
	if *idle != 1 {
		t.Fatalf("Idle calls %d once the second wait ran out, want 1", *idle)
	}
}

// Without Idle there is nothing to wait for: no timer starts.
func TestFanoutWithoutIdle(t *testing.T) {
	f := newFanout(nil, time.Minute)
	a := &fakeAfter{}
	f.after = a.after
	pushBegin(f, 1)
	pushEnd(f)
	pushed(f, 1)
	if a.armed() != 0 {
		t.Fatalf("timers %d, want 0", a.armed())
	}
}

// The push counter wraps within its bits: the counts and the flag beside
// it stay as they were.
func TestFanoutEpochWraps(t *testing.T) {
	f, idle, _ := testFanout()
	pushBegin(f, 1)
	pushEnd(f)
	pushed(f, 1) // one client owes throughout
	for range fanEpochMask + 10 {
		pushBegin(f, 0)
		pushEnd(f)
	}
	st := f.state.Load()
	if sendingOf(st) != 0 || owingOf(st) != 1 || st&fanTimedOut != 0 || epochOf(st) != 10 {
		t.Fatalf("state sending %d owing %d timed out %v epoch %d; want 0, 1, false, 10", sendingOf(st), owingOf(st), st&fanTimedOut != 0, epochOf(st))
	}
	answered(f)
	if *idle != 1 {
		t.Fatalf("Idle calls %d, want 1", *idle)
	}
}
