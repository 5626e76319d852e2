package overload

import "testing"

func TestWatermarks(t *testing.T) {
	m := New(Config{HeapStopAccepting: 100, HeapShed: 200})
	var heap uint64
	m.readHeap = func() uint64 { return heap }
	for _, step := range []struct {
		heap         uint64
		paused, shed bool
	}{
		{50, false, false},
		{150, true, false},
		{250, true, true},
		{150, true, false},
		{50, false, false},
		{120, true, false},
	} {
		heap = step.heap
		m.Sample()
		if m.AcceptPaused() != step.paused || m.Shedding() != step.shed {
			t.Fatalf("heap %d: paused %v shed %v, want %v %v", step.heap, m.AcceptPaused(), m.Shedding(), step.paused, step.shed)
		}
	}
	if n := m.Stats.AcceptPauses.Load(); n != 2 {
		t.Fatalf("AcceptPauses %d, want 2", n)
	}
}

func TestConnectionCap(t *testing.T) {
	m := New(Config{MaxConnections: 2})
	if !m.AcquireConn() || !m.AcquireConn() {
		t.Fatal("refused under the cap")
	}
	if m.AcquireConn() {
		t.Fatal("admitted over the cap")
	}
	m.ReleaseConn()
	if !m.AcquireConn() {
		t.Fatal("refused after a release")
	}
	if m.Conns() != 2 || m.Stats.ConnsRejected.Load() != 1 {
		t.Fatalf("conns %d rejected %d", m.Conns(), m.Stats.ConnsRejected.Load())
	}
}

func TestNilManagerImposesNothing(t *testing.T) {
	var m *Manager
	if !m.AcquireConn() || m.AcceptPaused() || m.Shed() {
		t.Fatal("a nil manager limited something")
	}
	m.ReleaseConn()
}
