package httpproxy

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/monoclock"
)

// TestStreamProgressAcrossInit: the request's end and the response's
// start live in one word that a stream's start clears: request_timeout
// stops counting at either, expire learns whether the response started,
// and a stream re-initialized after its timer fired starts afresh (no
// cause, request_timeout counting again, stop not waiting for the old
// fire).
func TestStreamProgressAcrossInit(t *testing.T) {
	var started []bool
	expire := func(resp bool) { started = append(started, resp) }
	st := newStream(context.Background(), 0, time.Hour, expire)
	now := monoclock.Now()
	if d := st.next(now); d <= 0 || d > time.Hour {
		t.Fatalf("next = %v, want request_timeout's hour", d)
	}
	st.requestDone()
	if st.next(now) != time.Duration(1<<63-1) || st.progress.Load()&progressResp != 0 {
		t.Fatalf("after requestDone: next %v, progress %b", st.next(now), st.progress.Load())
	}
	st.stop()

	// request_timeout passed before the request ended, no response yet.
	past := now - int64(time.Second)
	st.initAt(context.Background(), 0, time.Millisecond, expire, past)
	if st.reqDone() {
		t.Fatal("init kept the last stream's request end")
	}
	st.fire()
	if err := st.stop(); err != errRequestTimeout || len(started) != 1 || started[0] {
		t.Fatalf("stop = %v, expire calls %v; want the request timeout, one call without a response", err, started)
	}

	// Idle with the response started: expire is told so.
	st.initAt(context.Background(), time.Hour, time.Millisecond, expire, past)
	st.responseStarted()
	if d := st.next(monoclock.Now()); !st.reqDone() || d < time.Minute {
		t.Fatalf("after responseStarted: reqDone %v, next %v (request_timeout still counted)", st.reqDone(), d)
	}
	st.last.Store(monoclock.Now() - int64(2*time.Hour)) // no activity since
	st.fire()
	if err := st.stop(); err != errStreamIdle || len(started) != 2 || !started[1] {
		t.Fatalf("stop = %v, expire calls %v; want the idle timeout, the second with the response started", err, started)
	}

	// The next stream on the same state: nothing of the fire is left.
	st.initAt(context.Background(), time.Hour, 0, expire, monoclock.Now())
	if st.expiring || st.progress.Load() != 0 || st.Err() != nil {
		t.Fatalf("re-init kept expiring %v, progress %b, err %v", st.expiring, st.progress.Load(), st.Err())
	}
	st.fire() // early: no limit passed
	if err := st.stop(); err != nil || len(started) != 2 {
		t.Fatalf("stop = %v, expire calls %v; want no cause, no new call", err, started)
	}
}

// TestEnterStream: a stream's phase keeps the connection's timer when it
// is armed for earlier (the last wait's limit), arms it for the stream's
// first limit (request_timeout or stream_idle_timeout) when that comes
// first, clears a cut of the reads, and does
// nothing once the connection closed.
func TestEnterStream(t *testing.T) {
	nc, peer := net.Pipe()
	defer nc.Close()
	defer peer.Close()
	c := &h1Conn{nc: nc}
	defer c.stopTimer()
	now := monoclock.Now()
	idleBy := monoclock.Add(now, time.Hour)
	c.enter(phaseIdle, idleBy, now)
	if !c.cutIdle() {
		t.Fatal("cutIdle: the connection was not waiting")
	}

	c.stream.initAt(context.Background(), 2*time.Hour, 0, nil, now)
	c.streaming.Store(true)
	c.enterStream(now)
	if tm := &c.tm; tm.phase != phaseStream || tm.at != idleBy || tm.cut {
		t.Fatalf("phase %d, armed at %d (want %d), cut %v", tm.phase, tm.at, idleBy, tm.cut)
	}
	c.stream.stop()
	c.streaming.Store(false)

	c.stream.initAt(context.Background(), 2*time.Hour, 30*time.Minute, nil, now)
	c.streaming.Store(true)
	c.enterStream(now)
	if want := monoclock.Add(now, 30*time.Minute); c.tm.at != want {
		t.Fatalf("armed at %d, want the stream's request limit %d", c.tm.at, want)
	}
	c.stream.stop()
	c.streaming.Store(false)

	c.stream.initAt(context.Background(), time.Minute, 10*time.Minute, nil, now)
	c.streaming.Store(true)
	c.enterStream(now)
	if want := monoclock.Add(now, time.Minute); c.tm.at != want {
		t.Fatalf("armed at %d, want the stream's idle limit %d", c.tm.at, want)
	}
	c.stream.stop()
	c.streaming.Store(false)

	c.stopTimer()
	at := c.tm.at
	c.stream.initAt(context.Background(), time.Second, 0, nil, now)
	c.enterStream(now)
	if c.tm.phase != phaseClosed || c.tm.at != at {
		t.Fatalf("a closed connection entered phase %d, armed at %d", c.tm.phase, c.tm.at)
	}
	c.stream.stop()
}

// TestStopWithNothingRegistered: a stream that handed out nothing (no
// timer of its own, no Done channel, AfterFunc, abort slot or parent
// link: an HTTP/1 stream that ended in time) ends by stop's short way in
// the state the general way leaves: ended with context.Canceled, no
// cause, its timers off, and what comes after the end runs at once.
func TestStopWithNothingRegistered(t *testing.T) {
	expire := func(bool) { t.Error("expire after stop") }
	past := monoclock.Now() - int64(time.Second)
	short := newStream(context.Background(), time.Millisecond, 0, expire)
	general := newStream(context.Background(), time.Millisecond, 0, expire)
	short.initAt(context.Background(), time.Millisecond, 0, expire, past)
	general.initAt(context.Background(), time.Millisecond, 0, expire, past)
	if err := short.stop(); err != nil {
		t.Fatalf("stop = %v", err)
	}
	general.mu.Lock()
	if err := general.stopLocked(); err != nil {
		t.Fatalf("stopLocked = %v", err)
	}
	for name, st := range map[string]*streamTimer{"short": short, "general": general} {
		st.fire() // the idle limit passed: a stopped stream ignores it
		if !st.stopped || st.Err() != context.Canceled || st.Cause() != context.Canceled || streamCause(st) != nil {
			t.Errorf("%s: stopped %v, Err %v, Cause %v, streamCause %v", name, st.stopped, st.Err(), st.Cause(), streamCause(st))
		}
		<-st.Done()
		ran := make(chan struct{})
		st.SetAbort(func() { close(ran) })
		<-ran
		if st.ClearAbort() {
			t.Errorf("%s: ClearAbort after the end = true", name)
		}
		if err := st.stop(); err != nil {
			t.Errorf("%s: a second stop = %v", name, err)
		}
	}
}
