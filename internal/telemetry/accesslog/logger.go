package accesslog

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// Config is one access log a listener writes: a sink path, a format and
// an optional filter.
type Config struct {
	Path   string
	Format *Format
	// Filter, when set, decides per record whether the line is written
	// (the Telemetry API's filter.expression).
	Filter func(*telemetry.Record) bool
}

// Sink is where log lines go: a file, or the proxy's standard output.
// Lines are buffered and flushed every FlushInterval (Envoy's
// file_flush_interval, 1s) or when the buffer fills.
type Sink struct {
	path   string
	mu     sync.Mutex
	bw     *bufio.Writer
	out    io.Writer
	closer io.Closer
	buf    []byte
	stop   chan struct{}
	done   chan struct{}
	errs   uint64
}

// FlushInterval is how often buffered lines are written out.
const FlushInterval = time.Second

// Open opens the sink for path; /dev/stdout and /dev/stderr are the
// process's own streams (stdout is given for tests and children).
func Open(path string, stdout io.Writer) (*Sink, error) {
	s := &Sink{path: path, stop: make(chan struct{}), done: make(chan struct{})}
	switch path {
	case "":
		return nil, fmt.Errorf("access log path: empty")
	case "/dev/stdout":
		s.out = stdout
	case "/dev/stderr":
		s.out = os.Stderr
	default:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
		s.out, s.closer = f, f
	}
	s.bw = bufio.NewWriterSize(s.out, 64*1024)
	go s.flusher()
	return s, nil
}

// Path is the sink's path.
func (s *Sink) Path() string { return s.path }

func (s *Sink) flusher() {
	defer close(s.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.Flush()
		case <-s.stop:
			return
		}
	}
}

// Log writes r in format f.
func (s *Sink) Log(f *Format, r *telemetry.Record) {
	s.mu.Lock()
	s.buf = f.Append(s.buf[:0], r)
	if _, err := s.bw.Write(s.buf); err != nil {
		s.errs++
	}
	s.mu.Unlock()
}

// Flush writes buffered lines out.
func (s *Sink) Flush() {
	s.mu.Lock()
	if s.bw.Flush() != nil {
		s.errs++
	}
	s.mu.Unlock()
}

// Close flushes and closes the sink.
func (s *Sink) Close() error {
	close(s.stop)
	<-s.done
	s.Flush()
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}
