package generate

import (
	"fmt"
	"sync"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// cacheSizes counts what a cache holds: entries, domain indexes, port
// tables, port layouts.
func cacheSizes(c *Cache) [4]int {
	var n [4]int
	for i, m := range []*sync.Map{&c.entries, &c.indexes, &c.tables, &c.layouts} {
		m.Range(func(_, _ any) bool { n[i]++; return true })
	}
	return n
}

// TestCacheIdleSweepsAsNextPush: a cache told Idle after each push's
// fan-out (as mastd does) serves what the uncached generators do, and once
// the next push context is set up holds exactly as many entries, indexes,
// tables and layouts as a cache that sweeps at the start of each push: the
// sweep moved off the push's critical path drops the same things. Idle
// called again before the next push, or twice, sweeps nothing more.
func TestCacheIdleSweepsAsNextPush(t *testing.T) {
	idle, plain := NewCache(CacheConfig{}), NewCache(CacheConfig{})
	proxies := cacheProxies()
	rs := bookinfoConfig()
	reg := bookinfoRegistry()
	full := configSnapshot(rs)
	dropped := 0 // Idle calls that dropped something
	push := func(cfg *config.Snapshot, step string) {
		pc := model.NewPushContext("v", model.DefaultMeshConfig(), cfg, reg)
		idle.state(pc)
		plain.state(pc)
		if a, b := cacheSizes(idle), cacheSizes(plain); a != b {
			t.Fatalf("%s: swept after the last fan-out the cache holds %v, swept at the push's start %v", step, a, b)
		}
		oracle(t, idle, pc, proxies, step)
		oracle(t, plain, pc, proxies, step)
		held := cacheSizes(idle)
		idle.Idle()
		swept := cacheSizes(idle)
		if swept != held {
			dropped++
		}
		idle.Idle()
		if again := cacheSizes(idle); again != swept {
			t.Fatalf("%s: a second Idle swept again: %v -> %v", step, swept, again)
		}
	}
	push(full, "initial")
	push(full, "again")
	for i, r := range rs {
		push(configSnapshot(without(rs, i)), "remove "+r.Key().String())
		push(full, "restore "+r.Key().String())
	}
	for h := range len(reg.Endpoints) {
		for op := range 3 {
			reg = registry.Reuse(reg, mutateEndpoints(reg, h, op+h))
			push(full, fmt.Sprintf("endpoint change %d/%d", h, op))
		}
	}
	if s := idle.Stats(); s.Mismatches != 0 || s.Hits == 0 {
		t.Fatalf("stats %+v", s)
	}
	if dropped == 0 {
		t.Fatal("Idle never dropped anything: the comparison proved nothing")
	}
}
