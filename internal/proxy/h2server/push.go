package h2server

import (
	"net"
	"syscall"

	"github.com/mast-mesh/mast/internal/proxy/h2frame"
)

// Push sends p as one DATA frame and flushes it when that needs no wait,
// for a forwarder whose source hands it body bytes from another
// connection's reader (h2client.Stream.ReadPush), which must never wait
// on this connection: the response head was given (WriteHead), the
// windows cover p, no other writer holds or waits for the connection's
// writer, nothing is left over from an earlier push, and the connection
// is a socket that can be written without waiting (plain TCP). The
// socket is written once; what it does not take waits in the connection
// (bounded by one push's bytes) and stalled asks the stream's writer to
// Flush, which waits for it. sent false: nothing was written and the
// stream's writer writes p itself (its flush also sends any control
// frames queued meanwhile). The stream's writer must not write
// concurrently (it waits in ReadPush).
func (s *Stream) Push(p []byte) (sent, stalled bool) {
	c := s.c
	if s.noBody || !s.started || len(p) == 0 || len(p) > int(c.maxFrame.Load()) || !c.wmu.TryLock() {
		return false, false
	}
	if c.waiting.Load() != 0 || c.werr != nil || len(c.pending) > 0 || !c.raw.ready(c.nc) {
		c.wmu.Unlock()
		return false, false
	}
	n := int64(len(p))
	c.mu.Lock()
	ok := s.werr == nil && !s.resetSent && s.sendWindow >= n && c.sendWindow >= n
	if ok {
		s.sendWindow -= n
		c.sendWindow -= n
	}
	c.mu.Unlock()
	if !ok {
		c.wmu.Unlock()
		return false, false
	}
	c.trying = true
	err := s.flushHead(false)
	if err == nil {
		err = h2frame.WriteData(c.buf(), s.ID, false, p)
		c.sent.Add(1)
	}
	c.trying = false
	werr, stalled := c.unlock(true, true)
	return true, stalled || err != nil || werr != nil
}

// writePending writes what a push left over, waiting as long as the write
// timeout allows; wmu is held.
func (c *conn) writePending() error {
	if len(c.pending) == 0 {
		return nil
	}
	_, err := c.writeSocket(c.pending)
	c.pending = nil
	return err
}

// rawSocket writes to the connection's socket without waiting; under wmu.
type rawSocket struct {
	rc   syscall.RawConn
	none bool // the connection is not a socket (TLS, a pipe)
	// One write's bytes and results, for write (bound once).
	p     []byte
	n     int
	err   error
	write func(fd uintptr) bool
}

// ready reports whether nc's socket can be written without waiting. A
// connection that still holds bytes it peeked has no socket yet; it is
// asked again next time.
func (r *rawSocket) ready(nc net.Conn) bool {
	if r.rc != nil {
		return true
	}
	if r.none {
		return false
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		r.none = true
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	r.rc, r.write = rc, r.writeFD
	return true
}

func (r *rawSocket) writeFD(fd uintptr) bool {
	n, err := syscall.Write(int(fd), r.p)
	r.n, r.err = max(n, 0), err
	return true // done: never wait for the socket
}

// tryWrite writes p to the socket once without waiting and keeps what it
// did not take in c.pending (after what is already there), reporting p
// written; a failed write closes the connection as writeSocket's does.
func (r *rawSocket) tryWrite(c *conn, p []byte) (int, error) {
	if len(c.pending) > 0 {
		c.pending = append(c.pending, p...)
		return len(p), nil
	}
	r.p = p
	err := r.rc.Write(r.write)
	n, werr := r.n, r.err
	r.p, r.n, r.err = nil, 0, nil
	if err == nil && werr != syscall.EAGAIN && werr != syscall.EINTR {
		err = werr
	}
	if err != nil {
		c.nc.Close()
		return n, err
	}
	c.pending = append(c.pending, p[n:]...)
	return len(p), nil
}
