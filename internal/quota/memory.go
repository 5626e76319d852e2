package quota

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Memory is the in-process backend: one mastd's counters, sharded by key.
type Memory struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [memShards]memShard
}

const memShards = 16

type memShard struct {
	mu        sync.Mutex
	counters  map[string]*counter
	lastSweep time.Time
}

// counter is one key's state. A fixed window uses window/used; a rolling
// window uses buckets (ascending bucket index, count).
type counter struct {
	window  int64 // fixed: window index
	used    int64
	buckets []bucket
	expires time.Time // nothing counted after this
}

type bucket struct{ idx, n int64 }

var _ Engine = (*Memory)(nil)

// NewMemory returns an empty in-memory engine; now is the clock (nil means
// time.Now), a parameter so that tests control windows.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	m := &Memory{now: now, seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].counters = make(map[string]*counter)
	}
	return m
}

// sweepEvery is how often a shard drops expired counters.
const sweepEvery = time.Minute

// Allocate implements Engine.
func (m *Memory) Allocate(_ context.Context, req Request) (Result, error) {
	if err := checkRequest(req); err != nil {
		return Result{}, err
	}
	max, window := req.Limit.Effective(req.Dimensions)
	key := Key(req.Limit.Name, req.Dimensions)
	s := &m.shards[maphash.String(m.seed, key)%memShards]
	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) > sweepEvery {
		for k, c := range s.counters {
			if now.After(c.expires) {
				delete(s.counters, k)
			}
		}
		s.lastSweep = now
	}
	c := s.counters[key]
	if c == nil {
		c = &counter{window: -1}
		s.counters[key] = c
	}
	us := now.UnixMicro()
	win := window.Microseconds()
	if req.Limit.Algorithm == RollingWindow {
		bkt := req.Limit.bucket(window).Microseconds()
		r := c.rolling(us, max, win, bkt, req.Amount, req.Behavior)
		c.expires = now.Add(window + time.Duration(bkt)*time.Microsecond)
		return r, nil
	}
	r := c.fixed(us, max, win, req.Amount, req.Behavior)
	c.expires = now.Add(r.ResetAfter)
	return r, nil
}

func grant(max, used, amount int64, b Behavior) int64 {
	avail := max - used
	if avail < 0 {
		avail = 0
	}
	if amount <= avail {
		return amount
	}
	if b == BestEffort {
		return avail
	}
	return 0
}

func (c *counter) fixed(now, max, win, amount int64, b Behavior) Result {
	w := now / win
	if c.window != w {
		c.window, c.used = w, 0
	}
	g := grant(max, c.used, amount, b)
	c.used += g
	reset := time.Duration((w+1)*win-now) * time.Microsecond
	return Result{Granted: g, ValidDuration: reset, Limit: max, Remaining: nonNeg(max - c.used), ResetAfter: reset}
}

func (c *counter) rolling(now, max, win, bkt, amount int64, b Behavior) Result {
	n := win / bkt
	cur := now / bkt
	keep := c.buckets[:0]
	var used int64
	for _, x := range c.buckets {
		if x.idx > cur-n {
			keep = append(keep, x)
			used += x.n
		}
	}
	c.buckets = keep
	g := grant(max, used, amount, b)
	if g > 0 {
		if l := len(c.buckets); l > 0 && c.buckets[l-1].idx == cur {
			c.buckets[l-1].n += g
		} else {
			c.buckets = append(c.buckets, bucket{cur, g})
		}
		used += g
	}
	var reset time.Duration
	if len(c.buckets) > 0 {
		reset = time.Duration((c.buckets[0].idx+n)*bkt-now) * time.Microsecond
	}
	valid := time.Duration((cur+n)*bkt-now) * time.Microsecond
	return Result{Granted: g, ValidDuration: valid, Limit: max, Remaining: nonNeg(max - used), ResetAfter: reset}
}

func nonNeg(v int64) int64 {
	if v < 0 {
		return 0
	}
	return v
}

// Close implements Engine; it drops all counters.
func (m *Memory) Close() error {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.counters = make(map[string]*counter)
		s.mu.Unlock()
	}
	return nil
}
