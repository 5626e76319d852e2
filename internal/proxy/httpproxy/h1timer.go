package httpproxy

import (
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/monoclock"
)

// An HTTP/1 connection enforces every limit of its life on one timer: the
// wait for the next request (the idle timeout, or ParkIdle before it is
// parked), request_headers_timeout while a head arrives, and the current
// stream's timers (stream_idle_timeout, request_timeout). Moving from one
// limit to the next is a store under a mutex: the timer is re-armed only
// when it would fire too late, and when it fires early (the limit moved
// on since it was armed) it re-arms itself for the current one. A
// keep-alive connection busy with requests so neither moves a read
// deadline nor resets a timer per request: its timer fires about once per
// ParkIdle. (Per request this replaces three read deadlines, each a
// runtime timer change under the descriptor's lock, and a timer Reset and
// Stop.)
//
// When an idle or head limit passes, the timer cuts the connection's
// reads with a read deadline in the past; the next phase clears it.

// h1Phase is what an HTTP/1 connection's timer enforces.
type h1Phase uint8

const (
	// phaseHead: a request head is being read, until by
	// (request_headers_timeout; 0: no limit). The first request's head
	// is bounded by the read deadline ServeConn set instead.
	phaseHead h1Phase = iota
	// phaseIdle: waiting for a request's first byte, until by.
	phaseIdle
	// phaseStream: a request is served; its streamTimer (h1Conn.stream,
	// while h1Conn.streaming) has the limits.
	phaseStream
	// phaseClosed: the connection is over; the timer is stopped.
	phaseClosed
)

// h1Timer is an HTTP/1 connection's timer and the state it enforces.
type h1Timer struct {
	mu    sync.Mutex
	t     *time.Timer
	phase h1Phase
	by    int64 // phaseIdle's and phaseHead's limit (monoclock.Now), 0 for none
	at    int64 // when t fires (monoclock.Now), 0 when it is not armed
	cut   bool  // the timer cut the reads (a read deadline in the past)
}

// enter moves c to phase ph with limit by (monoclock.Now, 0 for none) and
// clears a cut of the reads made for the phase before. The timer is armed
// for by when it would fire later. For phaseStream (enterStream) by is
// only when to look at the stream's limits first: onTimer reads them from
// the stream.
func (c *h1Conn) enter(ph h1Phase, by, now int64) {
	t := &c.tm
	t.mu.Lock()
	if t.phase != phaseClosed {
		t.phase, t.by = ph, by
		if t.cut {
			t.cut = false
			c.nc.SetReadDeadline(time.Time{})
		}
		if by > 0 && (t.at == 0 || t.at > by) {
			c.armLocked(by, now)
		}
	}
	t.mu.Unlock()
}

// enterStream moves c to phaseStream for its stream (c.stream, started
// at now: no activity or request end since), which c.streaming
// announces. The stream's first limit is the earlier of
// stream_idle_timeout from now and request_timeout.
func (c *h1Conn) enterStream(now int64) {
	st := &c.stream
	by := st.reqBy
	if st.idle > 0 {
		if idleBy := monoclock.Add(now, st.idle); by == 0 || idleBy < by {
			by = idleBy
		}
	}
	c.enter(phaseStream, by, now)
}

// armLocked makes the timer fire at by; c.tm.mu is held.
func (c *h1Conn) armLocked(by, now int64) {
	t := &c.tm
	d := time.Duration(max(by-now, 0))
	if t.t == nil {
		t.t = time.AfterFunc(d, c.onTimer)
	} else {
		t.t.Reset(d)
	}
	t.at = by
}

// onTimer enforces the current phase's limit, or re-arms for it.
func (c *h1Conn) onTimer() {
	t := &c.tm
	now := monoclock.Now()
	t.mu.Lock()
	t.at = 0
	switch t.phase {
	case phaseIdle, phaseHead:
		switch {
		case t.by == 0:
		case now >= t.by:
			t.cut = true
			c.nc.SetReadDeadline(time.Unix(1, 0))
		default:
			c.armLocked(t.by, now)
		}
		t.mu.Unlock()
	case phaseStream:
		st := &c.stream
		streaming := c.streaming.Load()
		t.mu.Unlock()
		if !streaming {
			return
		}
		st.fire()
		t.mu.Lock()
		if t.phase == phaseStream && t.at == 0 && c.streaming.Load() {
			now = monoclock.Now()
			if d, ok := st.pending(now); ok {
				c.armLocked(monoclock.Add(now, d), now)
			}
		}
		t.mu.Unlock()
	default:
		t.mu.Unlock()
	}
}

// cutIdle cuts the reads of a connection waiting for a request (draining);
// it reports whether the connection was waiting.
func (c *h1Conn) cutIdle() bool {
	t := &c.tm
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.phase != phaseIdle {
		return false
	}
	t.cut = true
	c.nc.SetReadDeadline(time.Unix(1, 0))
	return true
}

// stopTimer ends the timer for good (the connection closes).
func (c *h1Conn) stopTimer() {
	t := &c.tm
	t.mu.Lock()
	t.phase = phaseClosed
	if t.t != nil {
		t.t.Stop()
	}
	t.mu.Unlock()
}
