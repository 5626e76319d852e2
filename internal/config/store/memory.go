package store

import (
	"sync"
	"sync/atomic"

	"github.com/mast-mesh/mast/internal/config"
)

// Memory is an in-memory store whose resources are grouped by file name, merged
// with the same rules as File: the first file in lexical order wins a key.
// It is safe for concurrent use.
type Memory struct {
	mu       sync.Mutex // serialises changes and OnChange calls
	files    map[string][]config.Resource
	onChange func(old, new *config.Snapshot)
	snap     atomic.Pointer[config.Snapshot]
	merged   merged
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	m := &Memory{files: map[string][]config.Resource{}}
	m.merged = merge(nil)
	m.snap.Store(m.merged.snap)
	return m
}

// OnChange sets the function called, serially and with the store's change lock
// held, after each change that alters the snapshot. It must not call Set or Delete.
func (m *Memory) OnChange(fn func(old, new *config.Snapshot)) {
	m.mu.Lock()
	m.onChange = fn
	m.mu.Unlock()
}

// Set replaces the resources of file. Resources must not be modified afterwards.
func (m *Memory) Set(file string, rs []config.Resource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[file] = append([]config.Resource(nil), rs...)
	m.applyLocked()
}

// Delete removes file and its resources.
func (m *Memory) Delete(file string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[file]; !ok {
		return
	}
	delete(m.files, file)
	m.applyLocked()
}

func (m *Memory) applyLocked() {
	next := merge(m.files)
	old := m.snap.Load()
	m.merged = next
	if snapshotsEqual(old, next.snap) {
		return
	}
	m.snap.Store(next.snap)
	if m.onChange != nil {
		m.onChange(old, next.snap)
	}
}

// Snapshot returns the current snapshot. It is immutable.
func (m *Memory) Snapshot() *config.Snapshot { return m.snap.Load() }

// Conflicts returns the keys defined by more than one file.
func (m *Memory) Conflicts() []Conflict {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.merged.conflicts
}
