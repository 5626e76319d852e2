package h2client

// Sink takes response body bytes from the connection's read loop
// (ReadPush), which reads for every stream of the connection and so must
// never wait in it.
type Sink interface {
	// Push writes p on without waiting, or returns sent false having
	// written nothing. stalled: bytes of p (or of earlier writes) wait
	// for a flush that may wait, which ReadPush's caller does.
	Push(p []byte) (sent, stalled bool)
}

// ReadPush is Read for a forwarder that writes the body on to sink: while
// it waits with nothing buffered, the connection's read loop hands each
// DATA frame that arrives (but the one that ends the stream) to
// sink.Push itself instead of waking it, and buffers the frame for Read
// as before when the sink would have to wait (flow control, a busy or
// full connection). Pushed bytes count as read: their window goes back to
// the peer, so a sink that stops taking them still stops the peer. It
// returns 0, nil when a push stalled: the caller flushes the sink, then
// reads again. The caller must not write to the sink while ReadPush runs.
func (s *Stream) ReadPush(p []byte, sink Sink) (int, error) { return s.read(p, sink) }

// push hands a DATA frame's payload to sink on the read loop (c.mu not
// held); onData found the stream's caller waiting in ReadPush with
// nothing buffered and marked the stream pushing, so the caller stays
// parked (or waits for the push) and the payload keeps its place before
// anything that follows.
func (c *Conn) push(s *Stream, sink Sink, data []byte) {
	sent, stalled := sink.Push(data)
	c.mu.Lock()
	s.pushing = false
	var refund int32
	switch {
	case sent:
		refund = s.consumed(len(data))
	case s.err == nil && !s.done:
		s.keep(data)
	}
	s.flush = s.flush || stalled
	// Wake the caller unless it still waits with nothing to do: it took
	// the bytes (buffered now) or must flush, or stopped waiting (failure,
	// an early wake) and waits for the push to end.
	wake := !sent || stalled || s.sink == nil
	c.mu.Unlock()
	s.refund(refund)
	if wake {
		s.wake()
	}
}
