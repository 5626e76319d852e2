package spans

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Exporter sends a batch of spans to a collector.
type Exporter interface {
	// Export sends spans within ctx; an error counts them as failed.
	Export(ctx context.Context, spans []*Span) error
	// Shutdown releases the exporter's connections.
	Shutdown(ctx context.Context) error
}

// Batcher is a bounded span queue: a request only ever offers its span to
// the queue, and a full queue (the collector is slow or down) drops the
// span and counts it. One goroutine exports batches (BatchSize spans, or
// what waited Interval), each bounded by Timeout, as OpenTelemetry's
// BatchSpanProcessor does; the counters are served on 15090.
type Batcher struct {
	exp      Exporter
	queue    chan *Span
	batch    int
	interval time.Duration
	timeout  time.Duration
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once

	// Sent counts spans the collector accepted, Dropped spans the full
	// queue refused, Failed spans of batches the collector did not take.
	Sent, Dropped, Failed atomic.Uint64
}

// BatcherConfig bounds a batcher; zero fields take the defaults.
type BatcherConfig struct {
	// QueueSize is the most spans held (default 2048).
	QueueSize int
	// BatchSize is the most spans in one export (default 512).
	BatchSize int
	// Interval is the longest a span waits for its batch (default 1s).
	Interval time.Duration
	// Timeout bounds one export (default 5s).
	Timeout time.Duration
}

// NewBatcher starts a batcher exporting to exp.
func NewBatcher(exp Exporter, cfg BatcherConfig) *Batcher {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 2048
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 512
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	b := &Batcher{exp: exp, queue: make(chan *Span, cfg.QueueSize), batch: cfg.BatchSize,
		interval: cfg.Interval, timeout: cfg.Timeout, stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// Offer queues s, or drops it when the queue is full. It never blocks.
func (b *Batcher) Offer(s *Span) {
	select {
	case b.queue <- s:
	default:
		b.Dropped.Add(1)
	}
}

func (b *Batcher) run() {
	defer close(b.done)
	t := time.NewTicker(b.interval)
	defer t.Stop()
	buf := make([]*Span, 0, b.batch)
	for {
		select {
		case s := <-b.queue:
			buf = append(buf, s)
			if len(buf) >= b.batch {
				buf = b.export(buf)
			}
		case <-t.C:
			buf = b.export(buf)
		case <-b.stop:
			for {
				select {
				case s := <-b.queue:
					buf = append(buf, s)
					if len(buf) >= b.batch {
						buf = b.export(buf)
					}
				default:
					b.export(buf)
					return
				}
			}
		}
	}
}

func (b *Batcher) export(buf []*Span) []*Span {
	if len(buf) == 0 {
		return buf
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	err := b.exp.Export(ctx, buf)
	cancel()
	if err != nil {
		b.Failed.Add(uint64(len(buf)))
	} else {
		b.Sent.Add(uint64(len(buf)))
	}
	clear(buf)
	return buf[:0]
}

// Shutdown exports what is queued (each batch bounded by the timeout) and
// shuts the exporter down.
func (b *Batcher) Shutdown(ctx context.Context) error {
	b.once.Do(func() { close(b.stop) })
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.exp.Shutdown(ctx)
}
