package httpproxy

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/monoclock"
)

// Causes of a stream ended by its timers (Envoy's local replies).
var (
	// errStreamIdle: nothing moved on the stream, either way, for the
	// connection manager's stream_idle_timeout.
	errStreamIdle = errors.New("stream timeout")
	// errRequestTimeout: the whole request did not arrive within
	// request_timeout.
	errRequestTimeout = errors.New("request timeout")
)

// streamTimer is one stream's context and its timers: it enforces
// stream_idle_timeout and request_timeout for either codec, and it is the
// context the stream's filters and upstream exchanges see. Activity is
// recorded with one atomic store (no timer reset per read or write); the
// timer re-arms itself when it fires early. When a limit passes, the
// context ends with the cause and expire unblocks whatever I/O the stream
// is waiting on.
//
// It replaces a WithCancelCause context, a timer and an AfterFunc per
// request: an HTTP/1 connection's streams share one timer, the Done channel
// is made only when asked for, and an upstream exchange registers its I/O
// unblocker in one slot (SetAbort) instead of through context.AfterFunc.
// The route and per-try timeouts are not timers either: they are deadlines
// of the upstream connection (upstream.Request.Deadline).
type streamTimer struct {
	parent context.Context
	idle   time.Duration
	reqBy  int64        // request deadline (monoclock.Now), 0 for none
	last   atomic.Int64 // the last activity (monoclock.Now)
	// progress holds progressReqDone and progressResp: one word, so
	// that a stream's start clears both with one store.
	progress atomic.Uint32
	// expire unblocks the codec's pending I/O: reads always, writes when
	// the response had started (a local reply can still be written
	// otherwise).
	expire func(responseStarted bool)
	// t is the stream's timer (nil without timeouts); an HTTP/1
	// connection's streams share their connection's.
	t *time.Timer
	// unlinkParent stops the parent's propagation, when the stream has
	// its own (HTTP/1 connections propagate to their current stream).
	unlinkParent func() bool

	// firing counts a fire that decided to expire the stream and has not
	// finished calling expire: stop waits for it, so that expire never
	// runs after stop returned (a codec recycles the stream's state then,
	// and a late expire would cut the next stream). expiring (st.mu) says
	// such a fire began in this stream: only then has stop to wait.
	firing   sync.WaitGroup
	expiring bool

	mu      sync.Mutex
	gen     uint64 // counts the streams st served (init)
	stopped bool   // the timers are off
	err     error  // set once the context ended
	cause   error  // the timer's cause, when a timer ended it
	done    chan struct{}
	abort   func()   // the upstream exchange's I/O unblocker (SetAbort)
	funcs   []func() // context.AfterFunc and derived contexts
}

var _ context.Context = (*streamTimer)(nil)

// The bits of streamTimer.progress.
const (
	// progressReqDone: the request was read whole or the response
	// started (request_timeout no longer applies).
	progressReqDone uint32 = 1 << iota
	// progressResp: the response head was sent.
	progressResp
)

// closedChan is the Done channel of streams that ended before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// newStream makes a stream's context; arm starts its timers.
func newStream(parent context.Context, idle, request time.Duration, expire func(bool)) *streamTimer {
	st := &streamTimer{}
	st.init(parent, idle, request, expire)
	return st
}

// init makes st a new stream's context, as newStream does: a codec keeps
// one streamTimer with its connection or pooled stream and calls init for
// each stream once the previous one's stop returned. What the previous
// stream handed out then no longer acts on st: its AfterFunc stop
// functions check the generation, its Done channel stays closed.
func (st *streamTimer) init(parent context.Context, idle, request time.Duration, expire func(bool)) {
	st.initAt(parent, idle, request, expire, monoclock.Now())
}

// initAt is init with the stream's start already read (monoclock.Now): an
// HTTP/1 stream starts when its head's first byte arrived, as Envoy's
// starts at the codec's message begin.
func (st *streamTimer) initAt(parent context.Context, idle, request time.Duration, expire func(bool), now int64) {
	reqBy := int64(0)
	if request > 0 {
		reqBy = monoclock.Add(now, request)
	}
	st.mu.Lock()
	st.gen++
	st.idle, st.reqBy, st.stopped, st.expiring = max(idle, 0), reqBy, false, false
	// The pointers in one statement: one write barrier check for all.
	st.parent, st.expire, st.t, st.unlinkParent, st.err, st.cause, st.done, st.abort, st.funcs = parent, expire, nil, nil, nil, nil, nil, nil, nil
	st.mu.Unlock()
	st.last.Store(now)
	st.progress.Store(0)
}

// reqDone reports whether request_timeout no longer applies.
func (st *streamTimer) reqDone() bool { return st.progress.Load()&progressReqDone != 0 }

// timed reports whether the stream has a timeout to enforce.
func (st *streamTimer) timed() bool { return st.idle > 0 || st.reqBy != 0 }

// arm starts the stream's timers on t, or on a new timer when t is nil.
func (st *streamTimer) arm(t *time.Timer) {
	if !st.timed() {
		return
	}
	d := st.next(monoclock.Now())
	st.mu.Lock()
	defer st.mu.Unlock()
	if t == nil {
		t = time.AfterFunc(d, st.fire)
	} else {
		t.Reset(d)
	}
	st.t = t
}

// startStreamTimer returns the stream's context with its timers armed on a
// timer of its own, ending when ctx ends (HTTP/2 streams: ctx ends when
// the client resets the stream).
func startStreamTimer(ctx context.Context, idle, request time.Duration, expire func(bool)) (context.Context, *streamTimer) {
	st := newStream(ctx, idle, request, expire)
	if ctx.Done() != nil {
		st.unlinkParent = context.AfterFunc(ctx, func() { st.cancel(context.Canceled) })
	}
	st.arm(nil)
	return st, st
}

// next is how long until the earliest limit, from now.
func (st *streamTimer) next(now int64) time.Duration {
	d := time.Duration(1<<63 - 1)
	if st.idle > 0 {
		d = time.Duration(monoclock.Add(st.last.Load(), st.idle) - now)
	}
	if st.reqBy != 0 && !st.reqDone() {
		d = min(d, time.Duration(st.reqBy-now))
	}
	return max(d, 0)
}

// pending is how long until the earliest limit while the stream's timers
// run (false once they stopped, or without limits): an HTTP/1
// connection's timer re-arms with it (h1timer.go).
func (st *streamTimer) pending(now int64) (time.Duration, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.stopped || !st.timed() {
		return 0, false
	}
	return st.next(now), true
}

func (st *streamTimer) fire() {
	now := monoclock.Now()
	st.mu.Lock()
	if st.stopped {
		st.mu.Unlock()
		return
	}
	var cause error
	switch {
	case st.reqBy != 0 && !st.reqDone() && now >= st.reqBy:
		cause = errRequestTimeout
	case st.idle > 0 && now-st.last.Load() >= int64(st.idle):
		cause = errStreamIdle
	}
	if cause == nil {
		// (t is nil when a shared timer fired for an earlier stream
		// before arm ran for this one: arm sets it.)
		if d := st.next(now); d < time.Duration(1<<63-1) && st.t != nil {
			st.t.Reset(d)
		}
		st.mu.Unlock()
		return
	}
	st.cause = cause
	st.stopped, st.expiring = true, true
	funcs := st.end(context.Canceled)
	st.firing.Add(1)
	st.mu.Unlock()
	defer st.firing.Done()
	runAll(funcs)
	if st.expire != nil {
		st.expire(st.progress.Load()&progressResp != 0)
	}
}

// end ends the context with err and returns what must run outside st.mu
// (the abort slot and AfterFuncs); st.mu is held.
func (st *streamTimer) end(err error) []func() {
	if st.err != nil {
		return nil
	}
	st.err = err
	if st.done != nil {
		close(st.done)
	}
	funcs := st.funcs
	st.funcs = nil
	if st.abort != nil {
		funcs = append(funcs, st.abort)
		st.abort = nil
	}
	return funcs
}

func runAll(funcs []func()) {
	for _, f := range funcs {
		if f != nil {
			f()
		}
	}
}

// cancel ends the context (its parent ended, or the connection went away).
func (st *streamTimer) cancel(err error) {
	st.mu.Lock()
	funcs := st.end(err)
	st.mu.Unlock()
	runAll(funcs)
}

// Deadline is the parent's: the stream's own limits are not deadlines
// (activity moves the idle one).
func (st *streamTimer) Deadline() (time.Time, bool) { return st.parent.Deadline() }

// Done returns a channel closed when the stream ends; it is made on the
// first call.
func (st *streamTimer) Done() <-chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done == nil {
		if st.err != nil {
			return closedChan
		}
		st.done = make(chan struct{})
	}
	return st.done
}

func (st *streamTimer) Err() error {
	st.mu.Lock()
	err := st.err
	st.mu.Unlock()
	if err == nil {
		err = st.parent.Err()
	}
	return err
}

func (st *streamTimer) Value(key any) any { return st.parent.Value(key) }

// Cause is why the stream ended: the timer's cause, or the context's error
// (context.Cause would find the parent's cause, not the stream's).
func (st *streamTimer) Cause() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cause != nil {
		return st.cause
	}
	return st.err
}

// AfterFunc runs f when the stream ends (context.AfterFunc and contexts
// derived from the stream use it, without a goroutine each).
func (st *streamTimer) AfterFunc(f func()) func() bool {
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	st.funcs = append(st.funcs, f)
	i, gen := len(st.funcs)-1, st.gen
	st.mu.Unlock()
	return func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.gen != gen || st.err != nil || i >= len(st.funcs) || st.funcs[i] == nil {
			return false
		}
		st.funcs[i] = nil
		return true
	}
}

// SetAbort registers the upstream exchange's I/O unblocker (one at a time;
// see upstream.Aborter); it runs at once when the stream already ended.
func (st *streamTimer) SetAbort(f func()) {
	st.mu.Lock()
	ended := st.err != nil
	if !ended {
		st.abort = f
	}
	st.mu.Unlock()
	if ended {
		f()
	}
}

// ClearAbort removes the unblocker; false means it ran (or is running).
func (st *streamTimer) ClearAbort() bool {
	st.mu.Lock()
	ok := st.err == nil
	if ok {
		st.abort = nil
	}
	st.mu.Unlock()
	return ok
}

// streamCause is the timer that ended ctx's stream (errStreamIdle,
// errRequestTimeout), or nil.
func streamCause(ctx context.Context) error {
	st, ok := ctx.(*streamTimer)
	if !ok || st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cause
}

// touch records activity on the stream.
func (st *streamTimer) touch() {
	if st != nil && st.idle > 0 {
		st.last.Store(monoclock.Now())
	}
}

// requestDone disarms request_timeout: the request arrived whole, or the
// response began.
func (st *streamTimer) requestDone() {
	if st != nil && !st.reqDone() {
		st.progress.Or(progressReqDone)
	}
}

// responseStarted records the response head's sending: activity, and
// the end of request_timeout.
func (st *streamTimer) responseStarted() {
	if st != nil {
		st.progress.Or(progressResp | progressReqDone)
		st.touch()
	}
}

// disarm stops the timers without ending the stream's context (an
// upgraded stream lives on with its own idle timeout).
func (st *streamTimer) disarm() {
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stopped = true
	if st.t != nil {
		st.t.Stop()
	}
}

// stop disarms the timers and ends the stream's context; it reports the
// cause when they had fired.
// After stop, expire is never called.
func (st *streamTimer) stop() error {
	if st == nil {
		return nil
	}
	st.mu.Lock()
	if st.t == nil && st.err == nil && st.done == nil && st.funcs == nil && st.abort == nil && st.unlinkParent == nil {
		// Nothing to stop, close, run or wait for (an HTTP/1 stream
		// that ended in time): the context ends, no timer's cause.
		st.stopped, st.err = true, context.Canceled
		st.mu.Unlock()
		return nil
	}
	return st.stopLocked()
}

// stopLocked is stop's general case; st.mu is held.
func (st *streamTimer) stopLocked() error {
	st.stopped = true
	if st.t != nil {
		st.t.Stop()
	}
	funcs := st.end(context.Canceled)
	cause, expiring := st.cause, st.expiring
	st.mu.Unlock()
	runAll(funcs)
	if st.unlinkParent != nil {
		st.unlinkParent()
	}
	if expiring {
		st.firing.Wait()
	}
	return cause
}

// timedBody is a request body whose reads count as stream activity and
// whose end disarms request_timeout; a read cut short by the timers
// reports their cause.
type timedBody struct {
	r  io.Reader
	st *streamTimer
	// ctx is the stream's context (its cause names the timer that fired).
	ctx context.Context
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.st.touch()
	}
	if err == io.EOF {
		b.st.requestDone()
	} else if err != nil {
		if c := streamCause(b.ctx); c != nil {
			return n, c
		}
	}
	return n, err
}

// TryRead passes on the body's TryRead (h2client.ReadyReader), with Read's
// bookkeeping: what it took is activity, the body's end disarms
// request_timeout. A body without TryRead offers nothing.
func (b *timedBody) TryRead(p []byte) (int, bool, error) {
	rr, ok := b.r.(readyReader)
	if !ok {
		return 0, false, nil
	}
	n, done, err := rr.TryRead(p)
	if n > 0 {
		b.st.touch()
	}
	if done {
		b.st.requestDone()
	}
	if err != nil {
		if c := streamCause(b.ctx); c != nil {
			return n, false, c
		}
	}
	return n, done, err
}

// StopBody passes on h2client's BodyStopper to the body.
func (b *timedBody) StopBody() { stopBody(b.r) }

// TakeBuffered passes on the body's TakeBuffered (bufferedTaker) with
// Read's bookkeeping: what it took is activity, and it is the body's end.
func (b *timedBody) TakeBuffered(max int) ([]byte, bool) {
	data, ok := takeBuffered(b.r, max)
	if ok {
		if len(data) > 0 {
			b.st.touch()
		}
		b.st.requestDone()
	}
	return data, ok
}

// bufferedTaker is http1.Body's TakeBuffered: the rest of a body that is
// all in the connection's read buffer, as a view of that buffer, valid
// until the connection reads again. Wrappers of request bodies pass it on.
type bufferedTaker interface {
	TakeBuffered(max int) ([]byte, bool)
}

// takeBuffered calls r's TakeBuffered when it has one.
func takeBuffered(r io.Reader, max int) ([]byte, bool) {
	if t, ok := r.(bufferedTaker); ok {
		return t.TakeBuffered(max)
	}
	return nil, false
}

// stopBody calls r's StopBody when it has one.
func stopBody(r io.Reader) {
	if bs, ok := r.(bodyStopper); ok {
		bs.StopBody()
	}
}

// bodyStopper is h2client.BodyStopper: a streamed request body whose
// reads can be made to fail at once, so that the upstream exchange lets go
// of it before the downstream stream is recycled. Wrappers of request
// bodies pass it on.
type bodyStopper interface{ StopBody() }

// readyReader is h2client.ReadyReader: a body that hands over what of it
// already arrived without waiting.
type readyReader interface {
	TryRead(p []byte) (n int, done bool, err error)
}

// timeoutStatus maps a stream timer's cause to Envoy's local reply; ok is
// false for other errors.
func timeoutStatus(err error) (status int, body string, ok bool) {
	switch {
	case errors.Is(err, errStreamIdle):
		return 408, "stream timeout", true
	case errors.Is(err, errRequestTimeout):
		return 408, "request timeout", true
	}
	return 0, "", false
}
