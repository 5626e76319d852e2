// Command relayloop measures what an event loop of its own could save the
// proxy's HTTP/1.1 path: one relay hop that forwards Content-Length framed
// HTTP/1.1 requests to an upstream over one kept-alive connection per
// downstream connection, and copies the response back. The bytes pass
// unchanged (no header work), so the two modes differ only in how they
// wait:
//
//   - go: a goroutine per downstream connection, reads and writes as raw
//     system calls inside syscall.RawConn (mast-proxy's rawsock), EAGAIN
//     parks on Go's netpoller.
//   - epoll: one locked OS thread, level-triggered epoll over every socket,
//     a state machine per connection (nginx's shape).
//
// Run two relays in a chain in front of fortio's echo server, load them at a
// fixed rate from another CPU, and read CPU time and system calls per request
// from /proc and perf (docs/decisions.md, "An event loop for HTTP/1.1").
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/mast-mesh/mast/internal/proxy/rawsock"
)

func main() {
	mode := flag.String("mode", "go", "go or epoll")
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	up := flag.String("upstream", "", "upstream address")
	flag.Parse()
	var err error
	switch *mode {
	case "go":
		err = serveGo(*listen, *up)
	case "epoll":
		err = serveEpoll(*listen, *up)
	default:
		err = fmt.Errorf("-mode %q: want go or epoll", *mode)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// msgLen returns the length of the HTTP/1.1 message at the start of b
// (head and Content-Length body), or 0 while it is incomplete.
func msgLen(b []byte) (int, error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > 64<<10 {
			return 0, errors.New("head too large")
		}
		return 0, nil
	}
	head := b[:end+2]
	n := 0
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		line := head[:i+1]
		head = head[i+1:]
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("content-length")) {
			var err error
			if n, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, fmt.Errorf("content-length: %w", err)
			}
		}
	}
	if total := end + 4 + n; len(b) >= total {
		return total, nil
	}
	return 0, nil
}

// readMsg reads one message into buf (which may hold earlier bytes) and
// returns it and what follows it.
func readMsg(c net.Conn, buf []byte) (msg, rest []byte, err error) {
	for {
		if n, err := msgLen(buf); err != nil {
			return nil, nil, err
		} else if n > 0 {
			return buf[:n], buf[n:], nil
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		if err != nil {
			return nil, nil, err
		}
		buf = buf[:len(buf)+n]
	}
}

func serveGo(listen, up string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			dc := rawsock.Wrap(c)
			u, err := net.Dial("tcp", up)
			if err != nil {
				log.Print(err)
				return
			}
			defer u.Close()
			uc := rawsock.Wrap(u)
			dbuf, ubuf := make([]byte, 0, 8192), make([]byte, 0, 8192)
			for {
				req, rest, err := readMsg(dc, dbuf)
				if err != nil {
					return
				}
				if _, err := uc.Write(req); err != nil {
					return
				}
				dbuf = append(dbuf[:0], rest...)
				resp, rest, err := readMsg(uc, ubuf)
				if err != nil {
					return
				}
				if _, err := dc.Write(resp); err != nil {
					return
				}
				ubuf = append(ubuf[:0], rest...)
			}
		}()
	}
}

// econn is one side of a relayed pair in the event loop.
type econn struct {
	fd   int
	peer *econn
	buf  []byte
	up   bool // the upstream side
}

func serveEpoll(listen, up string) error {
	runtime.LockOSThread()
	ap, err := net.ResolveTCPAddr("tcp", listen)
	if err != nil {
		return err
	}
	upAddr, err := net.ResolveTCPAddr("tcp", up)
	if err != nil {
		return err
	}
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	sa := &unix.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	if err := unix.Bind(lfd, sa); err != nil {
		return err
	}
	if err := unix.Listen(lfd, 1024); err != nil {
		return err
	}
	bound, _ := unix.Getsockname(lfd)
	b4 := bound.(*unix.SockaddrInet4)
	fmt.Printf("%s:%d\n", net.IP(b4.Addr[:]), b4.Port)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return err
	}
	usa := &unix.SockaddrInet4{Port: upAddr.Port}
	copy(usa.Addr[:], upAddr.IP.To4())
	conns := map[int32]*econn{}
	closePair := func(c *econn) {
		for _, x := range []*econn{c, c.peer} {
			unix.Close(x.fd)
			delete(conns, int32(x.fd))
		}
	}
	var evs [128]unix.EpollEvent
	for {
		n, err := unix.EpollWait(ep, evs[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range evs[:n] {
			if int(ev.Fd) == lfd {
				for {
					fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
					ufd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
					if err == nil {
						err = unix.Connect(ufd, usa) // blocking: set-up only
					}
					if err != nil {
						log.Print(err)
						unix.Close(fd)
						continue
					}
					unix.SetsockoptInt(ufd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
					unix.SetNonblock(ufd, true)
					d := &econn{fd: fd, buf: make([]byte, 0, 8192)}
					u := &econn{fd: ufd, buf: make([]byte, 0, 8192), up: true, peer: d}
					d.peer = u
					conns[int32(fd)], conns[int32(ufd)] = d, u
					unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)})
					unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ufd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(ufd)})
				}
				continue
			}
			c := conns[ev.Fd]
			if c == nil {
				continue
			}
			if err := c.readable(); err != nil {
				closePair(c)
			}
		}
	}
}

// readable reads what arrived and forwards every complete message to the
// peer (a request upstream, a response downstream).
func (c *econn) readable() error {
	if len(c.buf) == cap(c.buf) {
		c.buf = append(c.buf, 0)[:len(c.buf)]
	}
	n, err := unix.Read(c.fd, c.buf[len(c.buf):cap(c.buf)])
	switch {
	case err == unix.EAGAIN:
		return nil
	case err != nil:
		return err
	case n == 0:
		return io.EOF
	}
	c.buf = c.buf[:len(c.buf)+n]
	for {
		m, err := msgLen(c.buf)
		if err != nil {
			return err
		}
		if m == 0 {
			return nil
		}
		if err := writeAll(c.peer.fd, c.buf[:m]); err != nil {
			return err
		}
		c.buf = c.buf[:copy(c.buf, c.buf[m:])]
	}
}

// writeAll writes b, waiting for writability with poll when the socket
// buffer is full (never at this benchmark's sizes).
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EAGAIN {
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, -1)
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
