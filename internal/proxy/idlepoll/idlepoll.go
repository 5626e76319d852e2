// Package idlepoll holds idle connections without a goroutine each. A
// connection with nothing to do (an HTTP/1.1 keep-alive connection between
// requests, an HTTP/2 connection without streams) is parked: its socket is
// registered with one epoll instance per Poller (EPOLLONESHOT), and its
// goroutine exits. When the socket becomes readable (a request, or the
// client closing), or when its owner wakes it (a timeout, draining), the
// Poller starts a goroutine that resumes serving it.
//
// Only the kernel's socket buffer may hold unread bytes while a connection
// is parked: its owner parks it only when nothing read is buffered above
// the socket (bufio readers, TLS records), since readability of the socket
// is all the Poller watches.
package idlepoll

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Poller watches parked connections; its zero value is ready. The epoll
// instance and its goroutine exist only while a connection is parked.
type Poller struct {
	mu     sync.Mutex
	f      *os.File // the epoll instance, nil while nothing is parked
	epfd   int      // f's descriptor (f.Fd would make it blocking)
	gen    uint64   // counts epoll instances
	next   uint64   // the last parking's id
	parked map[uint64]*Conn
}

// Conn is one connection's parking state, kept by its owner.
type Conn struct {
	nc     net.Conn
	rc     syscall.RawConn // nc's socket, once known
	resume func()
	id     uint64 // while parked
	gen    uint64 // the epoll instance the socket is registered with
}

// Init prepares c for parking nc; resume is what runs (on a new goroutine)
// when the parked connection becomes readable or is woken. It reports
// false when nc has no socket to watch.
func (c *Conn) Init(nc net.Conn, resume func()) bool {
	for {
		switch w := nc.(type) {
		case interface{ NetConn() net.Conn }: // *tls.Conn
			nc = w.NetConn()
			continue
		case syscall.Conn:
			c.nc, c.resume = nc, resume
			return true
		}
		return false
	}
}

// socket returns the socket under c's connection (through TLS, whose own
// buffered records the owner checked). A wrapper that can hold unread
// bytes returns an error from SyscallConn while it does.
func (c *Conn) socket() syscall.RawConn {
	if c.rc == nil && c.nc != nil {
		rc, err := c.nc.(syscall.Conn).SyscallConn()
		if err != nil {
			return nil
		}
		c.rc = rc
	}
	return c.rc
}

// Park hands c to the poller: the caller's goroutine must then return and
// no longer touch the connection. It reports false (and the caller keeps
// serving) when the socket cannot be watched.
func (p *Poller) Park(c *Conn) bool {
	if c.socket() == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil {
		if err := p.start(); err != nil {
			return false
		}
	}
	p.next++
	id := p.next
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	epfd := p.epfd
	var err error
	cerr := c.rc.Control(func(fd uintptr) {
		op := unix.EPOLL_CTL_MOD
		if c.gen != p.gen {
			op = unix.EPOLL_CTL_ADD
		}
		err = unix.EpollCtl(epfd, op, int(fd), &ev)
		switch {
		case errors.Is(err, unix.ENOENT) && op == unix.EPOLL_CTL_MOD:
			err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		case errors.Is(err, unix.EEXIST) && op == unix.EPOLL_CTL_ADD:
			err = unix.EpollCtl(epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		}
	})
	if cerr != nil || err != nil {
		p.stopIfEmpty()
		return false
	}
	c.gen, c.id = p.gen, id
	p.parked[id] = c
	return true
}

// Wake resumes c now if it is parked (its owner's timeout, draining, the
// connection's context ending). It reports whether c was parked.
func (p *Poller) Wake(c *Conn) bool {
	p.mu.Lock()
	if c.id == 0 || p.parked[c.id] != c {
		p.mu.Unlock()
		return false
	}
	delete(p.parked, c.id)
	c.id = 0
	p.stopIfEmpty()
	p.mu.Unlock()
	go c.resume()
	return true
}

// Parked returns how many connections are parked.
func (p *Poller) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}

// start creates the epoll instance and its goroutine; p.mu is held.
func (p *Poller) start() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return err
	}
	// Non-blocking, the epoll descriptor joins Go's own poller: the
	// goroutine waiting for events holds no thread.
	f := os.NewFile(uintptr(epfd), "idlepoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	p.f, p.epfd = f, epfd
	p.gen++
	if p.parked == nil {
		p.parked = map[uint64]*Conn{}
	}
	go p.wait(f, rc)
	return nil
}

// stopIfEmpty closes the epoll instance once nothing is parked (its
// goroutine then returns); p.mu is held.
func (p *Poller) stopIfEmpty() {
	if len(p.parked) == 0 && p.f != nil {
		p.f.Close()
		p.f = nil
	}
}

// wait resumes the connections whose sockets became readable, until f is
// closed.
func (p *Poller) wait(f *os.File, rc syscall.RawConn) {
	var evs [64]unix.EpollEvent
	for {
		n := 0
		var werr error
		err := rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), evs[:], 0)
			if werr == unix.EINTR {
				werr = nil
			}
			return n > 0 || werr != nil
		})
		if err != nil || werr != nil {
			return // closed
		}
		p.mu.Lock()
		if p.f != f {
			p.mu.Unlock()
			return
		}
		for _, ev := range evs[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			c := p.parked[id]
			if c == nil {
				continue // woken meanwhile
			}
			delete(p.parked, id)
			c.id = 0
			go c.resume()
		}
		p.stopIfEmpty()
		p.mu.Unlock()
	}
}
