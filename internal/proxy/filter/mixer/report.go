package mixer

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// batcher sends reports in batches: when max are waiting or wait after
// the first, from a goroutine of its own (never on the request path).
type batcher struct {
	max  int
	wait time.Duration
	enc  *attribute.Encoder
	dict *attribute.Dictionary

	mu      sync.Mutex
	pending []*mixerpb.CompressedAttributes
	timer   *time.Timer
	dial    func() (rpc.Conn, error)
	log     *slog.Logger
}

func (b *batcher) add(ca *mixerpb.CompressedAttributes, dial func() (rpc.Conn, error), log *slog.Logger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = append(b.pending, ca)
	b.dial, b.log = dial, log
	if len(b.pending) >= b.max {
		b.flushLocked()
		return
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(b.wait, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.flushLocked()
		})
	}
}

func (b *batcher) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.pending) == 0 {
		return
	}
	req := &mixerpb.ReportRequest{Attributes: b.pending, GlobalWordCount: uint32(b.dict.Len()),
		RepeatedAttributesSemantics: mixerpb.ReportRequest_INDEPENDENT_ENCODING}
	b.pending = nil
	dial, log := b.dial, b.log
	go func() {
		conn, err := dial()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = call(ctx, conn, reportMethod, req, new(mixerpb.ReportResponse))
			cancel()
		}
		if err != nil && log != nil {
			log.Debug("mixer report failed", "err", err)
		}
	}()
}
