package ctl

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the progress timer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestProgress: a step that outlasts the threshold is announced; one that
// ends before it is not. (Thresholds of zero and an hour: no timing is
// asserted.)
func TestProgress(t *testing.T) {
	var out syncBuffer
	p := &progress{w: &out, after: time.Hour}
	done := p.step("Reading %s", "the access logs")
	done()
	if out.String() != "" {
		t.Errorf("a quick step printed %q", out.String())
	}
	p.after = 0
	done = p.step("Sending GET %s", "http://reviews:9080/")
	for deadline := time.Now().Add(30 * time.Second); out.String() == "" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	done()
	if got := out.String(); got != "Sending GET http://reviews:9080/...\n" {
		t.Errorf("a slow step printed %q", got)
	}
}
