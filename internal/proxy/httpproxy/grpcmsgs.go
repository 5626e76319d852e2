package httpproxy

import (
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// grpcFrames counts the messages of one direction of a gRPC stream as its
// bytes pass: each message is a 5-byte prefix (compressed flag, big-endian
// length) and that many bytes (gRPC over HTTP/2's Length-Prefixed-Message),
// counted when its prefix is complete, as Envoy's grpc_stats filter does.
// One goroutine feeds it; the count is read by the periodic reporter.
type grpcFrames struct {
	skip  uint64 // payload bytes of the current message still to pass
	hdr   [5]byte
	hdrN  int
	count atomic.Uint64
}

func (g *grpcFrames) feed(p []byte) {
	for len(p) > 0 {
		if g.skip > 0 {
			n := min(uint64(len(p)), g.skip)
			g.skip -= n
			p = p[n:]
			continue
		}
		n := copy(g.hdr[g.hdrN:], p)
		g.hdrN += n
		p = p[n:]
		if g.hdrN == len(g.hdr) {
			g.count.Add(1)
			g.skip = uint64(binary.BigEndian.Uint32(g.hdr[1:]))
			g.hdrN = 0
		}
	}
}

func (g *grpcFrames) reset() {
	g.skip, g.hdrN = 0, 0
	g.count.Store(0)
}

// isGRPC reports whether a request's content-type is gRPC's.
func isGRPC(ct string) bool { return strings.HasPrefix(ct, "application/grpc") }

// grpcStats is a gRPC stream's message counts on their way to Istio's
// istio_request_messages_total / istio_response_messages_total: added to
// the stream's series every reporting interval while it is open and once
// more when it ends (Istio's stats filter does the same on its timer).
type grpcStats struct {
	req, resp grpcFrames

	mu       sync.Mutex
	series   *metrics.Messages
	reported [2]uint64
	timer    *time.Timer
	every    time.Duration
	ended    bool
}

func (g *grpcStats) reset() {
	g.req.reset()
	g.resp.reset()
	g.series, g.reported, g.timer, g.ended = nil, [2]uint64{}, nil, false
}

// start begins reporting to series (nil: the metrics are off or capped).
func (g *grpcStats) start(series *metrics.Messages, every time.Duration) {
	if series == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended || g.series != nil {
		return
	}
	g.series, g.every = series, every
	g.flushLocked()
	g.timer = time.AfterFunc(every, g.tick)
}

func (g *grpcStats) tick() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		return
	}
	g.flushLocked()
	g.timer.Reset(g.every)
}

func (g *grpcStats) flushLocked() {
	rq, rs := g.req.count.Load(), g.resp.count.Load()
	g.series.Add(rq-g.reported[0], rs-g.reported[1])
	g.reported = [2]uint64{rq, rs}
}

// started reports whether start found a series.
func (g *grpcStats) started() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.series != nil
}

// end stops the timer and reports what is left.
func (g *grpcStats) end() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ended = true
	if g.timer != nil {
		g.timer.Stop()
	}
	if g.series != nil {
		g.flushLocked()
	}
}
