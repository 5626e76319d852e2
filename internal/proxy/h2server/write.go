package h2server

import (
	"bufio"
	"io"

	"golang.org/x/net/http2"
)

// buf returns the buffered writer, taking one from the pool when the
// connection has none (idle connections hold no write buffer); wmu is held.
func (c *conn) buf() *bufio.Writer {
	if c.bw == nil {
		bw, _ := c.pools.writers.Get().(*bufio.Writer)
		if bw == nil {
			bw = bufio.NewWriterSize(c.dw, 8192)
		} else {
			bw.Reset(c.dw)
		}
		c.bw = bw
	}
	return c.bw
}

func (c *conn) lockWrite() {
	c.waiting.Add(1)
	c.wmu.Lock()
	c.waiting.Add(-1)
}

// unlockWrite ends a write; flush asks for the batch to go out, which the
// last writer queued does. It returns the connection's write error as of
// the unlock (werr is read under wmu only).
func (c *conn) unlockWrite(flush bool) error {
	werr, _ := c.unlock(flush, false)
	return werr
}

// unlock is unlockWrite; try flushes without waiting (Push): what the
// socket does not take stays in pending, and stalled reports it (a writer
// that may wait must flush it).
func (c *conn) unlock(flush, try bool) (werr error, stalled bool) {
	if flush {
		c.needFlush = true
	}
	for {
		c.drainCtrl()
		if (c.needFlush || len(c.pending) > 0) && c.waiting.Load() == 0 {
			c.needFlush = false
			c.trying = try
			if c.bw != nil {
				if err := c.bw.Flush(); err != nil && c.werr == nil {
					c.werr = err
				}
				if c.bw.Buffered() == 0 {
					c.bw.Reset(nil)
					c.pools.writers.Put(c.bw)
					c.bw = nil
				}
			}
			if !try {
				if err := c.writePending(); err != nil && c.werr == nil {
					c.werr = err
				}
			}
			c.trying = false
		}
		werr = c.werr
		stalled = stalled || len(c.pending) > 0
		c.wmu.Unlock()
		if !c.cpending.Load() || !c.wmu.TryLock() {
			return werr, stalled
		}
	}
}

// drainCtrl moves queued control frames into the write buffer; wmu is held.
func (c *conn) drainCtrl() {
	if !c.cpending.Load() {
		return
	}
	c.cmu.Lock()
	c.buf().Write(c.cbuf.Bytes())
	c.cbuf.Reset()
	c.cqueued.Store(0)
	c.cpending.Store(false)
	c.cmu.Unlock()
	c.needFlush = true
}

// queuedCtrl counts a control frame written into cbuf; cmu is held.
func (c *conn) queuedCtrl() {
	c.cqueued.Add(1)
	c.cpending.Store(true)
}

// kick writes queued control frames unless a writer is at it (it will).
func (c *conn) kick() {
	if c.cpending.Load() && c.wmu.TryLock() {
		c.unlockWrite(true)
	}
}

func (c *conn) queueWindowUpdate(id uint32, n int64) {
	c.cmu.Lock()
	c.cfr.WriteWindowUpdate(id, uint32(n))
	c.queuedCtrl()
	c.cmu.Unlock()
}

func (c *conn) queueRST(id uint32, code http2.ErrCode) {
	c.cmu.Lock()
	c.cfr.WriteRSTStream(id, code)
	c.queuedCtrl()
	c.cmu.Unlock()
}

// queueGoAway queues GOAWAY naming the last stream; c.mu is held.
func (c *conn) queueGoAway(code http2.ErrCode) {
	c.cmu.Lock()
	c.cfr.WriteGoAway(c.maxID, code, nil)
	c.queuedCtrl()
	c.cmu.Unlock()
}

var _ io.Writer = frameWriter{}
