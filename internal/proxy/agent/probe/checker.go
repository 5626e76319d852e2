package probe

import (
	"context"
	"log/slog"
	"time"
)

// Event is a change of the application's health, reported once the
// threshold of consecutive results is reached.
type Event struct {
	Healthy bool
	// Message is the last failure's text when unhealthy.
	Message string
}

// Clock is the time source of a Checker; tests inject one to step it.
type Clock interface {
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Checker runs a prober on its schedule and reports changes of health.
type Checker struct {
	Prober Prober
	Timing Timing
	// Clock defaults to the real one.
	Clock  Clock
	Logger *slog.Logger
}

// Run probes after the initial delay, then every period, until ctx ends;
// report is called from Run's goroutine on every change of health (the
// first report once either threshold is reached, as istio-agent: healthy
// after SuccessThreshold consecutive passes, unhealthy after
// FailureThreshold consecutive failures).
func (c *Checker) Run(ctx context.Context, report func(Event)) {
	clock := c.Clock
	if clock == nil {
		clock = realClock{}
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.Timing.InitialDelay > 0 {
		select {
		case <-ctx.Done():
			return
		case <-clock.After(c.Timing.InitialDelay):
		}
	}
	th := Thresholds{Success: c.Timing.SuccessThreshold, Failure: c.Timing.FailureThreshold}
	for {
		pctx, cancel := context.WithTimeout(ctx, c.Timing.Timeout)
		err := c.Prober.Probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if ev, changed := th.Observe(err); changed {
			if ev.Healthy {
				log.Info("readiness probe: success threshold reached, workload healthy")
			} else {
				log.Warn("readiness probe: failure threshold reached, workload unhealthy", "error", ev.Message)
			}
			report(ev)
		}
		select {
		case <-ctx.Done():
			return
		case <-clock.After(c.Timing.Period):
		}
	}
}

// Thresholds turns probe results into health changes. The state starts
// unknown: the first change is reported once either threshold is reached.
// The zero thresholds count as 1.
type Thresholds struct {
	Success, Failure int

	passes, failures int
	state            int // 0 unknown, 1 healthy, 2 unhealthy
}

// Observe records one probe result (nil: passed) and returns the new
// health when it changed.
func (t *Thresholds) Observe(err error) (Event, bool) {
	if err == nil {
		t.passes, t.failures = t.passes+1, 0
		if t.passes >= max(t.Success, 1) && t.state != 1 {
			t.state, t.passes = 1, 0
			return Event{Healthy: true}, true
		}
		return Event{}, false
	}
	t.failures, t.passes = t.failures+1, 0
	if t.failures >= max(t.Failure, 1) && t.state != 2 {
		t.state, t.failures = 2, 0
		return Event{Message: err.Error()}, true
	}
	return Event{}, false
}
