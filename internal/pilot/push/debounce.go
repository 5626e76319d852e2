// Package push turns a stream of change events into a few pushes: it merges
// model.PushRequests that arrive close together (debouncing) and hands the
// merged request to a callback, one at a time.
package push

import (
	"context"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Istio's defaults (PILOT_DEBOUNCE_AFTER and PILOT_DEBOUNCE_MAX).
const (
	DefaultQuietPeriod = 100 * time.Millisecond
	DefaultMaxDelay    = 10 * time.Second
)

// Clock is the time source of a Debouncer; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures a Debouncer.
type Config struct {
	// QuietPeriod is how long no new event must arrive before a push starts
	// (default 100 ms).
	QuietPeriod time.Duration
	// MaxDelay bounds how long events may keep postponing a push (default 10 s).
	MaxDelay time.Duration
	// Push receives each merged request. Calls are serial: the next starts
	// after the previous returns; events arriving meanwhile are merged.
	Push func(*model.PushRequest)
	// Clock defaults to the wall clock.
	Clock Clock
}

// Debouncer merges push requests and calls Config.Push with the result once
// events have been quiet for QuietPeriod, or MaxDelay after the first of them.
// Enqueue never blocks: pending requests are merged into one, so memory stays
// bounded however fast events arrive.
type Debouncer struct {
	quiet, max time.Duration
	push       func(*model.PushRequest)
	clock      Clock

	wake chan struct{} // capacity 1: "pending changed"

	mu      sync.Mutex
	pending *model.PushRequest
	events  int       // enqueued since the last push
	first   time.Time // time of the first pending event
	last    time.Time // time of the latest pending event
}

// NewDebouncer returns a Debouncer; call Run to start it.
func NewDebouncer(cfg Config) *Debouncer {
	d := &Debouncer{
		quiet: cfg.QuietPeriod,
		max:   cfg.MaxDelay,
		push:  cfg.Push,
		clock: cfg.Clock,
		wake:  make(chan struct{}, 1),
	}
	if d.quiet <= 0 {
		d.quiet = DefaultQuietPeriod
	}
	if d.max <= 0 {
		d.max = DefaultMaxDelay
	}
	if d.clock == nil {
		d.clock = realClock{}
	}
	if d.push == nil {
		d.push = func(*model.PushRequest) {}
	}
	return d
}

// Enqueue adds a change event. A nil request means a full push. It never
// blocks and may be called from any goroutine.
func (d *Debouncer) Enqueue(req *model.PushRequest) {
	if req == nil {
		req = &model.PushRequest{Full: true}
	}
	now := d.clock.Now()
	d.mu.Lock()
	if d.events == 0 {
		d.first = now
	}
	d.last = now
	d.events++
	d.pending = d.pending.Merge(req)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers merged pushes until ctx is done. A push in progress when ctx
// ends is finished first; pending events are dropped.
func (d *Debouncer) Run(ctx context.Context) {
	var timer <-chan time.Time // only the latest timer is watched
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer:
			timer = nil
		}
		req, wait := d.next()
		if req != nil {
			timer = nil
			d.push(req)
			// Events that arrived during the push are in pending; look again.
			select {
			case d.wake <- struct{}{}:
			default:
			}
			continue
		}
		if wait > 0 {
			timer = d.clock.After(wait)
		}
	}
}

// next takes the pending request if it is due, or says how long to wait.
// It returns (nil, 0) when nothing is pending.
func (d *Debouncer) next() (*model.PushRequest, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.events == 0 {
		return nil, 0
	}
	now := d.clock.Now()
	due, wait := decide(now.Sub(d.first), now.Sub(d.last), d.quiet, d.max)
	if !due {
		return nil, wait
	}
	req := d.pending
	d.pending, d.events = nil, 0
	return req, 0
}

// decide is the debounce rule: push when events have been quiet for quiet, or
// when the first pending event is max old; otherwise wait for the earlier of
// the two deadlines.
func decide(sinceFirst, sinceLast, quiet, max time.Duration) (due bool, wait time.Duration) {
	if sinceLast >= quiet || sinceFirst >= max {
		return true, 0
	}
	return false, min(quiet-sinceLast, max-sinceFirst)
}
