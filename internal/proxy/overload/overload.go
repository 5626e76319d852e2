// Package overload is mast-proxy's overload manager (Envoy's, reduced to
// the two resources a Go proxy can watch cheaply): a cap on downstream
// connections, and the heap, with two watermarks — above the first the
// listeners stop accepting connections (they wait in the kernel's backlog),
// above the second new requests are shed with a 503 and connections are
// not kept alive.
package overload

import (
	"context"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Config sets the limits; zero values disable each.
type Config struct {
	// MaxConnections caps concurrently open downstream connections (Envoy's
	// global_downstream_max_connections); connections over it are closed
	// as they are accepted.
	MaxConnections int64
	// HeapStopAccepting is the heap size (bytes of live and unswept heap
	// objects) above which listeners stop accepting.
	HeapStopAccepting uint64
	// HeapShed is the heap size above which requests are refused (503)
	// and connections close after their current request.
	HeapShed uint64
	// Interval is how often the heap is sampled (default 250ms).
	Interval time.Duration
}

// Stats count what the manager did.
type Stats struct {
	// ConnsRejected: connections closed because of the connection cap.
	ConnsRejected atomic.Uint64
	// RequestsShed: requests answered 503 above the shed watermark.
	RequestsShed atomic.Uint64
	// AcceptPauses: times the listeners stopped accepting.
	AcceptPauses atomic.Uint64
}

// Manager tracks connections and heap use. A nil *Manager imposes nothing.
type Manager struct {
	cfg        Config
	conns      atomic.Int64
	heap       atomic.Uint64
	stopAccept atomic.Bool
	shed       atomic.Bool
	Stats      Stats
	// readHeap samples the heap (runtime/metrics by default; tests replace it).
	readHeap func() uint64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

// New returns a manager with cfg; call Run to sample the heap.
func New(cfg Config) *Manager {
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	s := []metrics.Sample{{Name: heapMetric}}
	return &Manager{cfg: cfg, readHeap: func() uint64 {
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[0].Value.Uint64()
	}}
}

// Run samples the heap until ctx ends (nothing to do without heap
// watermarks).
func (m *Manager) Run(ctx context.Context) {
	if m == nil || (m.cfg.HeapStopAccepting == 0 && m.cfg.HeapShed == 0) {
		return
	}
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.Sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample reads the heap once and updates the overload state.
func (m *Manager) Sample() {
	h := m.readHeap()
	m.heap.Store(h)
	stop := m.cfg.HeapStopAccepting > 0 && h >= m.cfg.HeapStopAccepting
	if stop && !m.stopAccept.Swap(true) {
		m.Stats.AcceptPauses.Add(1)
	} else if !stop {
		m.stopAccept.Store(false)
	}
	m.shed.Store(m.cfg.HeapShed > 0 && h >= m.cfg.HeapShed)
}

// AcceptPaused reports whether listeners should stop accepting now.
func (m *Manager) AcceptPaused() bool { return m != nil && m.stopAccept.Load() }

// AcquireConn counts a new downstream connection; false means it is over
// the cap and must be closed (it is not counted then).
func (m *Manager) AcquireConn() bool {
	if m == nil {
		return true
	}
	n := m.conns.Add(1)
	if m.cfg.MaxConnections > 0 && n > m.cfg.MaxConnections {
		m.conns.Add(-1)
		m.Stats.ConnsRejected.Add(1)
		return false
	}
	return true
}

// ReleaseConn uncounts a connection AcquireConn admitted.
func (m *Manager) ReleaseConn() {
	if m != nil {
		m.conns.Add(-1)
	}
}

// Shed reports whether a new request must be refused, and counts it.
func (m *Manager) Shed() bool {
	if m == nil || !m.shed.Load() {
		return false
	}
	m.Stats.RequestsShed.Add(1)
	return true
}

// Shedding reports whether requests are being shed (without counting).
func (m *Manager) Shedding() bool { return m != nil && m.shed.Load() }

// Conns is the number of open downstream connections.
func (m *Manager) Conns() int64 {
	if m == nil {
		return 0
	}
	return m.conns.Load()
}

// Heap is the last heap sample in bytes.
func (m *Manager) Heap() uint64 {
	if m == nil {
		return 0
	}
	return m.heap.Load()
}
