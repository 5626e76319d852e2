package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	mastd "github.com/mast-mesh/mast/internal/controlplane"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// Server is a running mastd the scenarios talk to.
type Server interface {
	XDSAddr() string
	// Mem is mastd's memory after a forced GC.
	Mem() (MemStats, error)
	// CPU is the CPU time mastd's process has used and its run-queue wait
	// (in process: the whole test process's).
	CPU() (CPUTime, error)
	StartCPUProfile(path string) error
	StopCPUProfile() error
	WriteHeapProfile(path string) error
	Close() error
}

var (
	_ Server = (*Child)(nil)
	_ Server = (*InProcess)(nil)
)

// InProcess is mastd (controlplane.Run) in this process, for go test
// benchmarks. Its Mem includes the simulated proxies' memory; use Child for
// memory figures.
type InProcess struct {
	xds     string
	cancel  context.CancelFunc
	errc    chan error
	Startup time.Duration
}

// StartInProcess runs mastd for dir until Close.
func StartInProcess(dir string, log *slog.Logger) (*InProcess, error) {
	return StartInProcessRegistries(dir, log, nil)
}

// StartInProcessRegistries runs mastd for dir and the registries (as
// mastd --registry) until Close.
func StartInProcessRegistries(dir string, log *slog.Logger, registries []registry.Watcher) (*InProcess, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	s := &InProcess{cancel: cancel, errc: make(chan error, 1)}
	ready := make(chan net.Addr, 1)
	go func() {
		s.errc <- mastd.Run(ctx, mastd.Config{
			ConfigDir: dir, XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0",
			Mesh: model.DefaultMeshConfig(), Logger: log, Registries: registries,
			Ready: func(xds, _ net.Addr) { ready <- xds },
		})
	}()
	select {
	case addr := <-ready:
		s.xds = addr.String()
	case err := <-s.errc:
		cancel()
		return nil, err
	}
	s.Startup = time.Since(start)
	return s, nil
}

// XDSAddr is the ADS address.
func (s *InProcess) XDSAddr() string { return s.xds }

// Mem returns this whole process's memory (mastd and the proxies).
func (s *InProcess) Mem() (MemStats, error) { return readMem(), nil }

// CPU returns the CPU time of this process, fleet included.
func (s *InProcess) CPU() (CPUTime, error) { return readCPU(), nil }

var errProfileInProcess = errors.New("profile in-process mastd with go test -cpuprofile")

// StartCPUProfile is not supported in process.
func (s *InProcess) StartCPUProfile(string) error { return errProfileInProcess }

// StopCPUProfile is not supported in process.
func (s *InProcess) StopCPUProfile() error { return errProfileInProcess }

// WriteHeapProfile is not supported in process.
func (s *InProcess) WriteHeapProfile(string) error { return errProfileInProcess }

// Close stops mastd.
func (s *InProcess) Close() error {
	s.cancel()
	return <-s.errc
}
