package h2server

import (
	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/h2frame"
	"github.com/mast-mesh/mast/internal/proxy/headerblock"
)

func (c *conn) cut(reason string) error {
	if c.cfg.OnFlood != nil {
		c.cfg.OnFlood(reason)
	}
	return errFlood
}

func streamErr(id uint32, code http2.ErrCode) error {
	return http2.StreamError{StreamID: id, Code: code}
}

func connErr(code http2.ErrCode) error { return http2.ConnectionError(code) }

// frame handles one frame on the reader.
func (c *conn) frame(f *h2frame.Frame) error {
	switch f.Type {
	case http2.FrameHeaders:
		c.hb.Start(f.StreamID, f.StreamEnded(), f.HasPriority(), f.Priority.StreamDep)
		if done, err := c.hb.Fragment(f.Fragment, f.HeadersEnded()); !done {
			return err
		}
		return c.onHeaders(&c.hb)
	case http2.FrameContinuation:
		if done, err := c.hb.Fragment(f.Fragment, f.HeadersEnded()); !done {
			return err
		}
		return c.onHeaders(&c.hb)
	case http2.FramePing:
		// A client that does not read its ACKs is cut by
		// maxQueuedControl (readLoop).
		if r := c.fl.ping(c.sent.Load()); r != "" {
			return c.cut(r)
		}
		if !f.IsAck() {
			c.cmu.Lock()
			c.cfr.WritePing(true, f.Data)
			c.queuedCtrl()
			c.cmu.Unlock()
		}
		return nil
	case http2.FrameWindowUpdate:
		return c.onWindowUpdate(f)
	case http2.FrameRSTStream:
		if r := c.fl.reset(); r != "" {
			return c.cut(r)
		}
		c.mu.Lock()
		s := c.streams[f.StreamID]
		if s == nil {
			idle := f.StreamID > c.maxID
			c.mu.Unlock()
			if idle {
				return connErr(http2.ErrCodeProtocol)
			}
			return nil
		}
		c.endStream(s, ErrReset)
		s.canceling = true
		c.mu.Unlock()
		c.cancel(s)
		return nil
	}
	switch f := f.Other.(type) {
	case *http2.DataFrame:
		if f.Length == 0 && !f.StreamEnded() {
			if r := c.fl.control(); r != "" {
				return c.cut(r)
			}
		}
		return c.onData(f)
	case *http2.SettingsFrame:
		if r := c.fl.control(); r != "" {
			return c.cut(r)
		}
		return c.onSettings(f)
	case *http2.PriorityFrame:
		if r := c.fl.control(); r != "" {
			return c.cut(r)
		}
		if f.StreamDep == f.StreamID {
			return streamErr(f.StreamID, http2.ErrCodeProtocol)
		}
	case *http2.GoAwayFrame:
		c.goAway()
	case *http2.PushPromiseFrame:
		return connErr(http2.ErrCodeProtocol)
	}
	return nil
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		c.mu.Lock()
		c.unacked--
		bad := c.unacked < 0
		c.mu.Unlock()
		if bad {
			return connErr(http2.ErrCodeProtocol)
		}
		return nil
	}
	// Repeated parameters apply in order (RFC 9113 section 6.5.3).
	if f.NumSettings() > 100 {
		return connErr(http2.ErrCodeProtocol)
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.tableSize.Store(int64(s.Val))
		case http2.SettingMaxFrameSize:
			c.maxFrame.Store(s.Val)
		case http2.SettingInitialWindowSize:
			c.mu.Lock()
			defer c.mu.Unlock()
			delta := int64(s.Val) - c.initialSend
			c.initialSend = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					return connErr(http2.ErrCodeFlowControl)
				}
				st.cond.Broadcast()
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.cmu.Lock()
	c.cfr.WriteSettingsAck()
	c.queuedCtrl()
	c.cmu.Unlock()
	return nil
}

func (c *conn) onWindowUpdate(f *h2frame.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			return connErr(http2.ErrCodeFlowControl)
		}
		for _, s := range c.streams {
			if s.waitSend {
				s.cond.Broadcast()
			}
		}
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		if f.StreamID > c.maxID {
			return connErr(http2.ErrCodeProtocol)
		}
		return nil
	}
	s.sendWindow += int64(f.Increment)
	if s.sendWindow > maxWindow {
		return streamErr(f.StreamID, http2.ErrCodeFlowControl)
	}
	s.cond.Broadcast()
	return nil
}

func (c *conn) onHeaders(f *headerblock.Block) error {
	id := f.ID
	if f.Invalid {
		return streamErr(id, http2.ErrCodeProtocol)
	}
	if id%2 != 1 {
		return connErr(http2.ErrCodeProtocol)
	}
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		// Trailers: they end the request (their fields are not forwarded).
		defer c.mu.Unlock()
		if s.remoteDone && s.endSent {
			return connErr(http2.ErrCodeStreamClosed) // closed (RFC 9113 section 5.1)
		}
		if s.remoteDone {
			return streamErr(id, http2.ErrCodeStreamClosed) // half-closed (remote)
		}
		if !f.EndStream {
			return streamErr(id, http2.ErrCodeProtocol)
		}
		for _, hf := range f.Fields {
			if hf.IsPseudo() {
				return streamErr(id, http2.ErrCodeProtocol) // pseudo-headers in trailers
			}
		}
		return c.remoteEnd(s)
	}
	if id <= c.maxID {
		c.mu.Unlock()
		return connErr(http2.ErrCodeProtocol)
	}
	c.maxID = id
	c.fl.stream()
	if c.goingAway {
		c.mu.Unlock()
		return nil
	}
	if f.HasPriority && f.Dep == id {
		c.mu.Unlock()
		return streamErr(id, http2.ErrCodeProtocol)
	}
	if c.active >= int(c.cfg.MaxConcurrentStreams) {
		c.mu.Unlock()
		return streamErr(id, http2.ErrCodeRefusedStream)
	}
	s := c.newStream(id)
	if msg := readRequest(&s.Request, f.Fields, f.EndStream, f.Truncated); msg != "" {
		c.mu.Unlock()
		c.recycle(s)
		return streamErr(id, http2.ErrCodeProtocol)
	}
	s.remoteDone = f.EndStream
	s.noBody = s.Method == "HEAD"
	c.streams[id] = s
	c.active++
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.mu.Unlock()
	c.h.Start(s)
	if s.ContentLength <= 0 || s.remoteDone || s.expect100() {
		c.mu.Lock()
		c.dispatch(s)
		c.mu.Unlock()
	}
	return nil
}

func (c *conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.recvWindow {
		return connErr(http2.ErrCodeFlowControl)
	}
	c.recvWindow -= n
	s := c.streams[id]
	if s == nil {
		if id > c.maxID {
			return connErr(http2.ErrCodeProtocol)
		}
		c.creditConn(n)
		if c.goingAway && id > c.maxID {
			return nil
		}
		return streamErr(id, http2.ErrCodeStreamClosed)
	}
	if s.remoteDone {
		c.creditConn(n)
		return streamErr(id, http2.ErrCodeStreamClosed)
	}
	if n > s.recvWindow {
		c.creditConn(n)
		return streamErr(id, http2.ErrCodeFlowControl)
	}
	s.recvWindow -= n
	data := f.Data()
	d := int64(len(data))
	if pad := n - d; pad > 0 {
		c.creditConn(pad)
		s.credit(pad)
	}
	if s.ContentLength >= 0 && s.recvd+d > s.ContentLength {
		c.creditConn(d)
		return streamErr(id, http2.ErrCodeProtocol)
	}
	s.recvd += d
	if d > 0 {
		if s.bodyClosed {
			c.creditConn(d)
		} else {
			s.body = append(s.body, data...)
			if s.served {
				s.owed += d
			} else {
				// Gathered before the request is served: counted against
				// BufferLimit, not the windows.
				c.creditConn(d)
				s.credit(d)
			}
		}
	}
	if f.StreamEnded() {
		return c.remoteEnd(s)
	}
	if !s.served && int64(len(s.body)-s.off) > int64(c.cfg.BufferLimit) {
		c.dispatch(s)
	}
	if s.waitRead {
		s.cond.Signal()
	}
	return nil
}

// remoteEnd ends the request body (END_STREAM); c.mu is held.
func (c *conn) remoteEnd(s *Stream) error {
	s.remoteDone = true
	if s.ContentLength >= 0 && s.recvd != s.ContentLength {
		return streamErr(s.ID, http2.ErrCodeProtocol)
	}
	c.dispatch(s)
	s.cond.Broadcast()
	return nil
}

// dispatch starts Serve for s once; c.mu is held.
func (c *conn) dispatch(s *Stream) {
	if s.served || s.gone {
		return
	}
	s.served = true
	c.pools.run(c, s)
}

func (c *conn) serve(s *Stream) {
	c.h.Serve(s)
	if !s.localDone && !s.resetSent {
		s.Abort()
	}
	c.mu.Lock()
	s.handlerDone = true
	if !s.gone {
		if !s.remoteDone {
			// The response is complete and the rest of the request will
			// not be read: tell the client to stop sending it.
			c.queueRST(s.ID, http2.ErrCodeNo)
		}
		c.endStream(s, ErrClosed)
	}
	free := !s.canceling
	c.mu.Unlock()
	c.kick()
	if free {
		c.recycle(s)
	}
}

// endStream takes s off the connection with err for its reads and
// writes, returning the connection window its unread body held; c.mu is
// held.
func (c *conn) endStream(s *Stream, err error) {
	if s.gone {
		return
	}
	s.gone = true
	if s.rerr == nil {
		s.rerr = err
	}
	if s.werr == nil {
		s.werr = err
	}
	c.creditConn(s.owed)
	s.owed = 0
	delete(c.streams, s.ID)
	c.active--
	s.cond.Broadcast()
	if c.active == 0 {
		if c.goingAway {
			c.finish()
		} else {
			c.armIdle()
			if c.peeking && c.parkable && !c.parkDeadline && c.quiet() {
				c.armPark() // the waiting reader may park
			}
		}
	}
}

// cancel tells the handler a stream ended under it, and recycles a
// stream that was never served. The caller set s.canceling with the
// stream's end, under c.mu.
func (c *conn) cancel(s *Stream) {
	c.mu.Lock()
	served := s.served
	c.mu.Unlock()
	c.h.Cancel(s, served)
	c.mu.Lock()
	s.canceling = false
	free := !served || s.handlerDone
	c.mu.Unlock()
	if free {
		c.recycle(s)
	}
}

// resetStream resets a stream for a protocol error of the client.
func (c *conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	s := c.streams[id]
	if s != nil {
		s.resetSent = true
		c.endStream(s, ErrReset)
		s.canceling = true
	}
	c.queueRST(id, code)
	c.mu.Unlock()
	if s != nil {
		c.cancel(s)
	}
}

// creditConn returns n bytes of the connection's receive window once
// enough accumulated; c.mu is held.
func (c *conn) creditConn(n int64) {
	c.recvCredit += n
	if c.recvCredit >= int64(max(c.cfg.Window, minWindow))/2 {
		c.recvWindow += c.recvCredit
		c.queueWindowUpdate(0, c.recvCredit)
		c.recvCredit = 0
	}
}
