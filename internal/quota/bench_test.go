package quota

import (
	"context"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/quota/quotatest"
)

// go test -run '^$' -bench . -benchmem ./internal/quota/
func benchAllocate(b *testing.B, e Engine, parallel bool) {
	l := &Limit{Name: "bench", MaxAmount: 1 << 40, ValidDuration: time.Hour}
	req := Request{Limit: l, Dimensions: map[string]string{"user": "u", "path": "/productpage"}, Amount: 1}
	ctx := context.Background()
	b.ReportAllocs()
	if !parallel {
		for b.Loop() {
			if _, err := e.Allocate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Allocate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMemoryAllocate(b *testing.B) { benchAllocate(b, NewMemory(nil), false) }

func BenchmarkMemoryAllocateParallel(b *testing.B) { benchAllocate(b, NewMemory(nil), true) }

func BenchmarkRedisAllocate(b *testing.B) {
	r, err := NewRedis(RedisOptions{URL: quotatest.StartRedis(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	benchAllocate(b, r, false)
}

func BenchmarkRedisAllocateParallel(b *testing.B) {
	r, err := NewRedis(RedisOptions{URL: quotatest.StartRedis(b), PoolSize: 16})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.SetParallelism(8)
	benchAllocate(b, r, true)
}
