package ads

import (
	"sync/atomic"
	"time"
)

// DefaultIdleWait is Config.IdleWait's default: how long after the last
// response of a fan-out was handed to gRPC Config.Idle waits for the
// clients still to answer. A SotW change at 1,000 services x 1,000 proxies
// takes ~150-300 ms from the first response to the last ACK on a quiet
// machine, most of it after the last Send returned; a client that has not
// answered a second after is a slow one (a push slot is taken back from it
// after as long: maxSlotHold), and waiting longer for it would only keep
// the collection from a mastd that is otherwise idle.
const DefaultIdleWait = time.Second

// fanout tells when a fan-out is complete (Config.Idle): every connection
// a push reached has handed its responses to gRPC, and its client has
// answered (ACKed or NACKed) them or the stream has ended, or IdleWait has
// passed since the last of those Sends returned with some clients still to
// answer. A push starting before then makes the wait start again after its
// own Sends.
//
// The state is one word changed by single atomic operations, so that each
// change sees the whole state it leads to and exactly one of them finds
// the fan-out complete; a connection changes it at most twice per push
// (when it has pushed, and when its client has answered all of it), never
// per ACK. Bits 0-23 count the sends in progress (connections with a push
// pending or in progress, and Push calls themselves); bits 24-47 the
// connections whose clients still owe answers to responses pushed to them;
// bits 48-62 number the pushes (the epoch a wait belongs to); bit 63 says
// that the wait of the current epoch ran out and Idle was called.
type fanout struct {
	state atomic.Uint64
	idle  func() // nil: nothing to tell, nothing tracked
	wait  time.Duration
	after func(time.Duration, func()) // time.AfterFunc; tests replace it
}

const (
	fanSending   = 1
	fanOwing     = 1 << 24
	fanCount     = 1<<24 - 1
	fanEpochBits = 48
	fanEpochMask = 1<<15 - 1
	fanTimedOut  = 1 << 63
)

func newFanout(idle func(), wait time.Duration) *fanout {
	if wait <= 0 {
		wait = DefaultIdleWait
	}
	return &fanout{idle: idle, wait: wait, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

func sendingOf(st uint64) uint64 { return st & fanCount }
func owingOf(st uint64) uint64   { return st >> 24 & fanCount }
func epochOf(st uint64) uint64   { return st >> fanEpochBits & fanEpochMask }

// begin counts a push as sending until its connections have their
// requests (end), and starts a new epoch: the wait of an earlier one no
// longer counts.
func (f *fanout) begin() {
	for {
		old := f.state.Load()
		epoch := (epochOf(old) + 1) & fanEpochMask
		next := old&(1<<fanEpochBits-1) + fanSending | epoch<<fanEpochBits
		if f.state.CompareAndSwap(old, next) {
			return
		}
	}
}

// enqueued counts a connection given a push it did not have pending.
func (f *fanout) enqueued() { f.state.Add(fanSending) }

// change applies a connection's (or Push's) move and returns the state it
// led to, for settle. sent: a send in progress ended; owing: +1 when the
// connection now owes answers and did not, -1 when it no longer does.
// Called under the connection's mu, so that its moves apply in order.
func (f *fanout) change(sent bool, owing int) uint64 {
	var d uint64
	if sent {
		d -= fanSending
	}
	switch owing {
	case 1:
		d += fanOwing
	case -1:
		d -= fanOwing
	}
	return f.state.Add(d)
}

// settle acts on a state change led to, outside any connection's lock:
// the fan-out is complete when nothing is sending or owed (and Idle was
// not called for this epoch yet); when a send ended with answers still
// owed, the wait starts.
func (f *fanout) settle(st uint64, sent bool) {
	if f.idle == nil || sendingOf(st) != 0 || st&fanTimedOut != 0 {
		return
	}
	if owingOf(st) == 0 {
		f.idle()
		return
	}
	if sent {
		epoch := epochOf(st)
		f.after(f.wait, func() { f.expire(epoch) })
	}
}

// expire ends the wait of epoch: when nothing was pushed since and answers
// are still owed, Idle is called without them.
func (f *fanout) expire(epoch uint64) {
	for {
		st := f.state.Load()
		if epochOf(st) != epoch || sendingOf(st) != 0 || owingOf(st) == 0 || st&fanTimedOut != 0 {
			return
		}
		if f.state.CompareAndSwap(st, st|fanTimedOut) {
			f.idle()
			return
		}
	}
}
