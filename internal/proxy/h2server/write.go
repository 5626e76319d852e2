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
	if flush {
		c.needFlush = true
	}
	var werr error
	for {
		c.drainCtrl()
		if c.needFlush && c.waiting.Load() == 0 && c.bw != nil {
			c.needFlush = false
			if err := c.bw.Flush(); err != nil && c.werr == nil {
				c.werr = err
			}
			if c.bw.Buffered() == 0 {
				c.bw.Reset(nil)
				c.pools.writers.Put(c.bw)
				c.bw = nil
			}
		}
		werr = c.werr
		c.wmu.Unlock()
		if !c.cpending.Load() || !c.wmu.TryLock() {
			return werr
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
