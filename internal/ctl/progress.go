package ctl

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progressAfter is how long a step may run before the command says what
// it is doing: nothing slower than a second goes silent.
const progressAfter = time.Second

// progress says on w (stderr, so that stdout stays the command's result)
// what a step is doing, once it has taken longer than after.
type progress struct {
	w     io.Writer
	after time.Duration
	mu    sync.Mutex
}

func newProgress(w io.Writer) *progress { return &progress{w: w, after: progressAfter} }

// step starts a step; done ends it. The message is printed only if the
// step is still running after p.after.
func (p *progress) step(format string, args ...any) (done func()) {
	msg := fmt.Sprintf(format, args...)
	t := time.AfterFunc(p.after, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		fmt.Fprintf(p.w, "%s...\n", msg)
	})
	return func() { t.Stop() }
}
