// Package rawsock gives the proxy's TCP sockets reads and writes that skip
// the Go runtime's system call bookkeeping.
//
// A *net.TCPConn's Read and Write enter the kernel through
// syscall.Syscall, which tells the scheduler a goroutine may block
// (entersyscall/exitsyscall). Each entry also wakes the runtime's monitor
// thread (sysmon) when it sleeps because every P was idle: at a proxy's
// usual load (a request now and then, the process idle in between) every
// request wakes it, and it then polls every 20 µs while the request runs.
// On a proxy pinned to one CPU those are context switches per request
// beside the request's own work (measured in bench/README.md: three
// voluntary switches per echoed message instead of one).
//
// A socket the runtime created never blocks (it is non-blocking and
// registered with the netpoller), so its reads and writes can be raw system
// calls made inside syscall.RawConn's Read and Write callbacks: EAGAIN
// hands the wait to the netpoller, as the standard path does, and
// deadlines, Close and concurrent use behave the same. Everything else
// (addresses, CloseWrite, SyscallConn, splice through ReadFrom/WriteTo) is
// the embedded *net.TCPConn's.
//
// A write the socket takes whole at once skips even the RawConn: the
// runtime's descriptor lock (two atomic operations) and its poll state
// reset are for the wait that such a write does not need. It is made on
// the descriptor directly, under the connection's own guard instead: Close
// waits for such writes to finish before the runtime may close (and the
// kernel reuse) the descriptor, and a connection with a write deadline
// takes the RawConn's path, which enforces it. EAGAIN or a partial write
// continues on that path.
//
// WriteVec writes two buffers as one write of both would, with writev(2):
// an HTTP/1 message's head and a body that is still in another buffer go
// out in one system call without being copied together first. A partial
// write resumes where it stopped, across the two buffers.
package rawsock

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// maxRW caps one system call's length, as the runtime's poll.FD does.
const maxRW = 1 << 30

// Conn is a TCP connection whose Read and Write are raw system calls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The state of the read and of the write in progress (each direction
	// runs one at a time under its mutex), and the callbacks handed to the
	// RawConn, bound once so that a call allocates nothing.
	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerr   syscall.Errno
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	wbuf    [2][]byte // what is left to write, in order
	wn      int
	werr    syscall.Errno
	writeFn func(fd uintptr) bool

	// fd is the socket's descriptor for the direct writes (tryWrite).
	// They hold fdmu's read lock and check closed under it; Close sets
	// closed under its write lock before closing the descriptor.
	fd     uintptr
	fdmu   sync.RWMutex
	closed bool
	// wdl: a write deadline is set, so writes take the RawConn's path.
	// dmu orders the deadline setters: wdl always tells the last one's.
	dmu sync.Mutex
	wdl atomic.Bool
}

// Wrap returns nc with raw reads and writes when it is a *net.TCPConn,
// else nc itself.
func Wrap(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	c, err := New(tc)
	if err != nil {
		return nc
	}
	return c
}

// New wraps tc.
func New(tc *net.TCPConn) (*Conn, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &Conn{TCPConn: tc, rc: rc}
	if err := rc.Control(func(fd uintptr) { c.fd = fd }); err != nil {
		return nil, err
	}
	c.readFn, c.writeFn = c.doRead, c.doWrite
	return c, nil
}

// Close closes the connection once no direct write uses its descriptor.
func (c *Conn) Close() error {
	c.fdmu.Lock()
	c.closed = true
	c.fdmu.Unlock()
	return c.TCPConn.Close()
}

// SetDeadline sets both deadlines, as net.Conn's.
func (c *Conn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wdl.Store(!t.IsZero())
	return c.TCPConn.SetDeadline(t)
}

// SetWriteDeadline sets the write deadline, as net.Conn's.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wdl.Store(!t.IsZero())
	return c.TCPConn.SetWriteDeadline(t)
}

// Read reads as net.Conn's Read: io.EOF once the peer closed its side.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", unwrapOp(err))
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) doRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.rbuf))), uintptr(len(c.rbuf)))
		switch e {
		case 0:
			c.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the netpoller waits for readability
		default:
			c.rerr = e
			return true
		}
	}
}

// Write writes all of p unless an error (a deadline, a closed connection)
// stops it, as net.Conn's Write.
func (c *Conn) Write(p []byte) (int, error) { return c.WriteVec(p, nil) }

// WriteVec writes a then b, all of both unless an error stops it, as Write
// writes them joined: in one system call (writev(2)) when the socket takes
// them at once.
func (c *Conn) WriteVec(a, b []byte) (int, error) {
	if len(a) == 0 {
		a, b = b, nil
	}
	c.wmu.Lock()
	done, errno := c.tryWrite(a, b)
	if done == len(a)+len(b) && done > 0 || errno != 0 {
		c.wmu.Unlock()
		if errno != 0 {
			return 0, c.opError("write", os.NewSyscallError("write", errno))
		}
		return done, nil
	}
	c.wbuf[0], c.wbuf[1] = skip(a, b, done)
	c.wn, c.werr = 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := done+c.wn, c.werr
	c.wbuf = [2][]byte{}
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, c.opError("write", unwrapOp(err))
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// VecWriter is a writer that writes two buffers in one system call, as
// *Conn's WriteVec does.
type VecWriter interface {
	WriteVec(a, b []byte) (int, error)
}

// WriteVec writes a then b on w: with w's WriteVec when it has one (a
// wrapper of a connection passes its own on this way), else with two
// Writes.
func WriteVec(w io.Writer, a, b []byte) (int, error) {
	if v, ok := w.(VecWriter); ok {
		return v.WriteVec(a, b)
	}
	n, err := w.Write(a)
	if err != nil {
		return n, err
	}
	m, err := w.Write(b)
	return n + m, err
}

// tryWrite writes what of a and b the socket takes at once, directly on
// the descriptor; errno is an error other than EAGAIN or EINTR. It writes
// nothing (for the RawConn's path to do it all) when there is nothing to
// write, when a write deadline is set, or once Close began. c.wmu is held.
func (c *Conn) tryWrite(a, b []byte) (n int, errno syscall.Errno) {
	if len(a) == 0 || c.wdl.Load() {
		return 0, 0
	}
	c.fdmu.RLock()
	if c.closed {
		c.fdmu.RUnlock()
		return 0, 0
	}
	r, e := writeOnce(c.fd, a, b)
	c.fdmu.RUnlock()
	switch e {
	case 0:
		return r, 0
	case syscall.EAGAIN, syscall.EINTR:
		return 0, 0
	}
	return 0, e
}

func (c *Conn) doWrite(fd uintptr) bool {
	for len(c.wbuf[0]) > 0 {
		n, e := writeOnce(fd, c.wbuf[0], c.wbuf[1])
		switch e {
		case 0:
			c.wn += n
			c.wbuf[0], c.wbuf[1] = skip(c.wbuf[0], c.wbuf[1], n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // the netpoller waits for writability
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// writeOnce is one write(2) of a, or writev(2) of a and b when b is not
// empty, of at most maxRW bytes. a is not empty.
func writeOnce(fd uintptr, a, b []byte) (int, syscall.Errno) {
	if len(a) > maxRW {
		a = a[:maxRW]
	}
	if len(b) == 0 || len(a) == maxRW {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(len(a)))
		return int(r), e
	}
	if len(b) > maxRW-len(a) {
		b = b[:maxRW-len(a)]
	}
	iov := [2]syscall.Iovec{{Base: unsafe.SliceData(a)}, {Base: unsafe.SliceData(b)}}
	iov[0].SetLen(len(a))
	iov[1].SetLen(len(b))
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(r), e
}

// skip returns what is left of a then b after their first n bytes, the
// first of the two empty only when both are.
func skip(a, b []byte, n int) ([]byte, []byte) {
	if n < len(a) {
		return a[n:], b
	}
	return b[n-len(a):], nil
}

// ReadFrom lets io.Copy into c splice from another raw connection's socket.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if o, ok := r.(*Conn); ok {
		r = o.TCPConn
	}
	return c.TCPConn.ReadFrom(r)
}

// WriteTo lets io.Copy from c splice into another raw connection's socket.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if o, ok := w.(*Conn); ok {
		w = o.TCPConn
	}
	return c.TCPConn.WriteTo(w)
}

// opError is the error net.Conn's methods return, around err.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// unwrapOp is the cause inside the RawConn's *net.OpError (a deadline,
// the connection closed).
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}
