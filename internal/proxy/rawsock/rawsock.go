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
// (addresses, deadlines, CloseWrite, SyscallConn, splice through
// ReadFrom/WriteTo) is the embedded *net.TCPConn's.
package rawsock

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
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
	wbuf    []byte
	wn      int
	werr    syscall.Errno
	writeFn func(fd uintptr) bool
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
	c.readFn, c.writeFn = c.doRead, c.doWrite
	return c, nil
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
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werr
	c.wbuf = nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, c.opError("write", unwrapOp(err))
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

func (c *Conn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		b := c.wbuf[c.wn:]
		if len(b) > maxRW {
			b = b[:maxRW]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		switch e {
		case 0:
			c.wn += int(n)
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
