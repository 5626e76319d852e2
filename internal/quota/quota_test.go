package quota

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/quota/quotatest"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock {
	// A window-aligned start: 1,700,000,000 s is a multiple of 10 s.
	return &fakeClock{t: time.Unix(1_700_000_000, 0)}
}

func alloc(t *testing.T, e Engine, l *Limit, dims map[string]string, amount int64, b Behavior) Result {
	t.Helper()
	r, err := e.Allocate(context.Background(), Request{Limit: l, Dimensions: dims, Amount: amount, Behavior: b})
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	return r
}

func TestMemoryFixedWindow(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now)
	l := &Limit{Name: "rq", MaxAmount: 3, ValidDuration: 10 * time.Second}
	for i := 0; i < 3; i++ {
		r := alloc(t, m, l, nil, 1, AllOrNothing)
		if r.Granted != 1 || r.Remaining != int64(2-i) || r.Limit != 3 {
			t.Fatalf("request %d: %+v", i, r)
		}
	}
	if r := alloc(t, m, l, nil, 1, AllOrNothing); r.Granted != 0 || r.Remaining != 0 || r.ResetAfter != 10*time.Second {
		t.Fatalf("over limit: %+v", r)
	}
	c.add(4 * time.Second)
	if r := alloc(t, m, l, nil, 1, AllOrNothing); r.Granted != 0 || r.ResetAfter != 6*time.Second || r.ValidDuration != 6*time.Second {
		t.Fatalf("same window: %+v", r)
	}
	c.add(6 * time.Second) // next window
	if r := alloc(t, m, l, nil, 2, AllOrNothing); r.Granted != 2 || r.Remaining != 1 {
		t.Fatalf("new window: %+v", r)
	}
	if r := alloc(t, m, l, nil, 2, AllOrNothing); r.Granted != 0 || r.Remaining != 1 {
		t.Fatalf("all or nothing over: %+v", r)
	}
	if r := alloc(t, m, l, nil, 2, BestEffort); r.Granted != 1 || r.Remaining != 0 {
		t.Fatalf("best effort: %+v", r)
	}
}

func TestMemoryRollingWindow(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now)
	l := &Limit{Name: "rq", MaxAmount: 4, ValidDuration: 10 * time.Second, Algorithm: RollingWindow, BucketDuration: time.Second}
	alloc(t, m, l, nil, 2, AllOrNothing) // bucket 0
	c.add(5 * time.Second)
	if r := alloc(t, m, l, nil, 2, AllOrNothing); r.Granted != 2 || r.Remaining != 0 || r.ResetAfter != 5*time.Second {
		t.Fatalf("bucket 5: %+v", r)
	}
	c.add(4 * time.Second) // t=9: both buckets still in the window
	if r := alloc(t, m, l, nil, 1, AllOrNothing); r.Granted != 0 {
		t.Fatalf("t=9: %+v", r)
	}
	c.add(1 * time.Second) // t=10: bucket 0 left; a fixed window would have reset fully
	r := alloc(t, m, l, nil, 3, BestEffort)
	if r.Granted != 2 || r.Remaining != 0 || r.ResetAfter != 5*time.Second {
		t.Fatalf("t=10: %+v", r)
	}
	c.add(5 * time.Second) // t=15: bucket 5 left, bucket 10 holds 2
	if r := alloc(t, m, l, nil, 3, AllOrNothing); r.Granted != 0 || r.Remaining != 2 {
		t.Fatalf("t=15: %+v", r)
	}
}

func TestOverridesAndKeys(t *testing.T) {
	c := newClock()
	m := NewMemory(c.now)
	l := &Limit{Name: "rq", MaxAmount: 2, ValidDuration: time.Minute, Overrides: []Override{
		{Dimensions: map[string]string{"user": "john"}, MaxAmount: 0},
		{Dimensions: map[string]string{"user": "vip"}, MaxAmount: 5, ValidDuration: time.Hour},
	}}
	if r := alloc(t, m, l, map[string]string{"user": "john", "path": "/"}, 1, AllOrNothing); r.Granted != 0 || r.Limit != 0 {
		t.Fatalf("john: %+v", r)
	}
	for i := 0; i < 5; i++ {
		if r := alloc(t, m, l, map[string]string{"user": "vip"}, 1, AllOrNothing); r.Granted != 1 || r.Limit != 5 {
			t.Fatalf("vip %d: %+v", i, r)
		}
	}
	// Each distinct dimension set has its own counter.
	for _, u := range []string{"a", "b"} {
		for i := 0; i < 2; i++ {
			if r := alloc(t, m, l, map[string]string{"user": u}, 1, AllOrNothing); r.Granted != 1 {
				t.Fatalf("%s %d: %+v", u, i, r)
			}
		}
		if r := alloc(t, m, l, map[string]string{"user": u}, 1, AllOrNothing); r.Granted != 0 {
			t.Fatalf("%s over: %+v", u, r)
		}
	}
	if Key("a", map[string]string{"b;": "c"}) == Key("a", map[string]string{"b": ";c"}) {
		t.Fatal("keys collide")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		l    Limit
		want string
	}{
		{Limit{Name: "x", MaxAmount: 1}, "validDuration: must be > 0"},
		{Limit{MaxAmount: 1, ValidDuration: time.Second}, "name: required"},
		{Limit{Name: "x", MaxAmount: -1, ValidDuration: time.Second}, "maxAmount: -1 is negative"},
		{Limit{Name: "x", ValidDuration: time.Second, Algorithm: RollingWindow, BucketDuration: time.Minute}, "bucketDuration: 1m0s is longer"},
		{Limit{Name: "x", ValidDuration: time.Hour, Algorithm: RollingWindow, BucketDuration: time.Millisecond}, "more than 1000 buckets"},
		{Limit{Name: "x", ValidDuration: time.Second, Overrides: []Override{{MaxAmount: 1}}}, "overrides[0].dimensions: required"},
	} {
		err := tc.l.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.l, err, tc.want)
		}
	}
	ok := Limit{Name: "x", MaxAmount: 1, ValidDuration: time.Second, Algorithm: RollingWindow, BucketDuration: 100 * time.Millisecond}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestRedisExact: two clients (two mastd) share one limit of N; many
// concurrent allocations from both get exactly N granted, 0 over.
func TestRedisExact(t *testing.T) {
	url := quotatest.StartRedis(t)
	for _, algo := range []Algorithm{FixedWindow, RollingWindow} {
		t.Run(algo.String(), func(t *testing.T) {
			const n = 50
			l := &Limit{Name: "exact-" + algo.String(), MaxAmount: n, ValidDuration: time.Hour, Algorithm: algo, BucketDuration: time.Minute}
			var clients [2]*Redis
			for i := range clients {
				r, err := NewRedis(RedisOptions{URL: url, PoolSize: 8})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				clients[i] = r
			}
			var granted atomic.Int64
			var wg sync.WaitGroup
			for g := 0; g < 16; g++ {
				wg.Add(1)
				go func(e Engine) {
					defer wg.Done()
					for i := 0; i < 10; i++ {
						r, err := e.Allocate(context.Background(), Request{Limit: l, Dimensions: map[string]string{"d": "v"}, Amount: 1})
						if err != nil {
							t.Error(err)
							return
						}
						granted.Add(r.Granted)
					}
				}(clients[g%2])
			}
			wg.Wait()
			if got := granted.Load(); got != n {
				t.Fatalf("granted %d across two clients, want exactly %d", got, n)
			}
			r := alloc(t, clients[0], l, map[string]string{"d": "v"}, 1, AllOrNothing)
			if r.Granted != 0 || r.Remaining != 0 || r.Limit != n || r.ResetAfter <= 0 || r.ResetAfter > time.Hour {
				t.Fatalf("after: %+v", r)
			}
		})
	}
}

// TestRedisSemantics runs the memory backend's cases that do not depend on
// the clock against Redis.
func TestRedisSemantics(t *testing.T) {
	url := quotatest.StartRedis(t)
	r, err := NewRedis(RedisOptions{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, algo := range []Algorithm{FixedWindow, RollingWindow} {
		l := &Limit{Name: "sem-" + algo.String(), MaxAmount: 3, ValidDuration: time.Hour, Algorithm: algo, Overrides: []Override{
			{Dimensions: map[string]string{"user": "john"}, MaxAmount: 1},
		}}
		if g := alloc(t, r, l, nil, 2, AllOrNothing); g.Granted != 2 || g.Remaining != 1 || g.Limit != 3 {
			t.Fatalf("%v first: %+v", algo, g)
		}
		if g := alloc(t, r, l, nil, 2, AllOrNothing); g.Granted != 0 || g.Remaining != 1 {
			t.Fatalf("%v all or nothing: %+v", algo, g)
		}
		if g := alloc(t, r, l, nil, 2, BestEffort); g.Granted != 1 || g.Remaining != 0 {
			t.Fatalf("%v best effort: %+v", algo, g)
		}
		if g := alloc(t, r, l, map[string]string{"user": "john"}, 1, AllOrNothing); g.Granted != 1 || g.Limit != 1 {
			t.Fatalf("%v john: %+v", algo, g)
		}
		if g := alloc(t, r, l, map[string]string{"user": "john"}, 1, AllOrNothing); g.Granted != 0 {
			t.Fatalf("%v john over: %+v", algo, g)
		}
	}
}

// TestRedisWindowsMove: a short window frees its quota once it has passed
// (the test waits for the window; it asserts behaviour, not timing).
func TestRedisWindowsMove(t *testing.T) {
	url := quotatest.StartRedis(t)
	r, err := NewRedis(RedisOptions{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, algo := range []Algorithm{FixedWindow, RollingWindow} {
		l := &Limit{Name: "move-" + algo.String(), MaxAmount: 1, ValidDuration: 200 * time.Millisecond, Algorithm: algo, BucketDuration: 50 * time.Millisecond}
		g := alloc(t, r, l, nil, 1, AllOrNothing)
		if g.Granted != 1 {
			t.Fatalf("%v: %+v", algo, g)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			time.Sleep(g.ResetAfter + 10*time.Millisecond)
			if g = alloc(t, r, l, nil, 1, AllOrNothing); g.Granted == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: quota never came back: %+v", algo, g)
			}
		}
	}
}

func TestRedisDown(t *testing.T) {
	r, err := NewRedis(RedisOptions{URL: "redis://127.0.0.1:1/0", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := &Limit{Name: "x", MaxAmount: 1, ValidDuration: time.Second}
	if _, err := r.Allocate(context.Background(), Request{Limit: l, Amount: 1}); err == nil {
		t.Fatal("allocation against an unreachable Redis succeeded")
	}
	if _, err := NewRedis(RedisOptions{URL: "http://x"}); err == nil {
		t.Fatal("bad URL accepted")
	}
}
