package httpproxy

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
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

// streamTimer enforces stream_idle_timeout and request_timeout on one
// stream, for either codec. Activity is recorded with one atomic store (no
// timer reset per read or write); the timer re-arms itself when it fires
// early. When a limit passes, the stream's context is cancelled with the
// cause and expire unblocks whatever I/O the stream is waiting on.
type streamTimer struct {
	idle       time.Duration
	reqBy      int64 // request deadline (UnixNano), 0 for none
	last       atomic.Int64
	reqDone    atomic.Bool // the request was read whole or the response started
	respActive atomic.Bool // the response head was sent
	cancel     context.CancelCauseFunc
	// expire unblocks the codec's pending I/O: reads always, writes when
	// the response had started (a local reply can still be written
	// otherwise).
	expire func(responseStarted bool)

	mu    sync.Mutex
	t     *time.Timer
	done  bool
	cause error
}

// startStreamTimer arms the stream's timers (none when both are 0) and
// returns the stream's context.
func startStreamTimer(ctx context.Context, idle, request time.Duration, expire func(bool)) (context.Context, *streamTimer) {
	if idle <= 0 && request <= 0 {
		return ctx, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	now := time.Now()
	st := &streamTimer{idle: idle, cancel: cancel, expire: expire}
	st.last.Store(now.UnixNano())
	if request > 0 {
		st.reqBy = now.Add(request).UnixNano()
	}
	st.t = time.AfterFunc(time.Duration(1<<63-1), st.fire)
	st.t.Reset(st.next(now.UnixNano())) // after st.t is set: fire may reset it
	return ctx, st
}

// next is how long until the earliest limit, from now.
func (st *streamTimer) next(now int64) time.Duration {
	d := time.Duration(1<<63 - 1)
	if st.idle > 0 {
		d = time.Duration(st.last.Load() + int64(st.idle) - now)
	}
	if st.reqBy != 0 && !st.reqDone.Load() {
		d = min(d, time.Duration(st.reqBy-now))
	}
	return max(d, 0)
}

func (st *streamTimer) fire() {
	now := time.Now().UnixNano()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return
	}
	var cause error
	switch {
	case st.reqBy != 0 && !st.reqDone.Load() && now >= st.reqBy:
		cause = errRequestTimeout
	case st.idle > 0 && now-st.last.Load() >= int64(st.idle):
		cause = errStreamIdle
	}
	if cause == nil {
		if d := st.next(now); d < time.Duration(1<<63-1) {
			st.t.Reset(d)
		}
		return
	}
	st.cause = cause
	st.done = true
	st.cancel(cause)
	if st.expire != nil {
		st.expire(st.respActive.Load())
	}
}

// touch records activity on the stream.
func (st *streamTimer) touch() {
	if st != nil {
		st.last.Store(time.Now().UnixNano())
	}
}

// requestDone disarms request_timeout: the request arrived whole, or the
// response began.
func (st *streamTimer) requestDone() {
	if st != nil {
		st.reqDone.Store(true)
	}
}

func (st *streamTimer) responseStarted() {
	if st != nil {
		st.respActive.Store(true)
		st.reqDone.Store(true)
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
	st.done = true
	st.t.Stop()
}

// stop disarms the timers and ends the stream's context; it reports the
// cause when they had fired.
// After stop, expire is never called.
func (st *streamTimer) stop() error {
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.done = true
	st.t.Stop()
	st.cancel(nil)
	return st.cause
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
		if c := context.Cause(b.ctx); c == errStreamIdle || c == errRequestTimeout {
			return n, c
		}
	}
	return n, err
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
