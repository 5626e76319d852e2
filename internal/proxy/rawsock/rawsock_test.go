package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair returns a raw connection and the plain peer it is connected to.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		peer <- c
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rc, ok := Wrap(nc).(*Conn)
	if !ok {
		t.Fatal("Wrap did not wrap a *net.TCPConn")
	}
	p := <-peer
	t.Cleanup(func() { rc.Close(); p.Close() })
	return rc, p
}

func TestReadWriteEOF(t *testing.T) {
	c, p := pair(t)
	if _, err := p.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if n, err := c.Write([]byte("world")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(p, got); err != nil || string(got) != "world" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty Read = %d, %v", n, err)
	}
	p.(*net.TCPConn).CloseWrite()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer's FIN = %d, %v; want 0, io.EOF", n, err)
	}
}

// A write larger than the socket buffers waits for the peer to read
// (EAGAIN, then the netpoller) and arrives whole.
func TestLargeWrite(t *testing.T) {
	c, p := pair(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		c.CloseWrite()
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the buffers fill
	got, err := io.ReadAll(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("peer read %d bytes (%v), want %d equal", len(got), err, len(data))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDeadlines(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 8))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v is not a net.Error timeout", err)
	}
	// A deadline in the past fails at once (the proxy cuts I/O this way).
	c.SetReadDeadline(time.Unix(1, 0))
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with a past deadline: %v", err)
	}
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	big := make([]byte, 64<<20) // more than the buffers hold: the peer never reads
	n, err := c.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(big) {
		t.Fatalf("Write past its deadline = %d, %v", n, err)
	}
}

// Close unblocks a pending Read, which reports net.ErrClosed.
func TestCloseUnblocksRead(t *testing.T) {
	c, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

func TestResetIsAnError(t *testing.T) {
	c, p := pair(t)
	p.(*net.TCPConn).SetLinger(0)
	c.Write([]byte("x")) // unread by the peer: its close resets
	p.Close()
	time.Sleep(20 * time.Millisecond)
	if _, err := c.Read(make([]byte, 8)); err == nil || err == io.EOF {
		t.Fatalf("Read after a reset: %v, want an error", err)
	}
}

// Reads and writes from several goroutines at once (net.Conn allows it)
// neither lose nor mix bytes within one call.
func TestConcurrentUse(t *testing.T) {
	c, p := pair(t)
	const writers, per = 4, 200
	msg := bytes.Repeat([]byte("m"), 100)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if _, err := c.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() {
		// echo back what arrived
		io.Copy(p, p)
	}()
	total := 0
	var mu sync.Mutex
	var rwg sync.WaitGroup
	for range 2 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			buf := make([]byte, 333)
			for {
				mu.Lock()
				if total >= writers*per*len(msg) {
					mu.Unlock()
					return
				}
				mu.Unlock()
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := c.Read(buf)
				mu.Lock()
				total += n
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	rwg.Wait()
	if total != writers*per*len(msg) {
		t.Fatalf("read back %d bytes, want %d", total, writers*per*len(msg))
	}
}

// io.Copy between two raw connections still splices (ReadFrom/WriteTo reach
// the sockets) and carries every byte.
func TestCopyBetweenRawConns(t *testing.T) {
	a, pa := pair(t)
	b, pb := pair(t)
	data := bytes.Repeat([]byte("z"), 1<<20)
	go func() {
		pa.Write(data)
		pa.(*net.TCPConn).CloseWrite()
	}()
	go func() {
		io.Copy(b, a)
		b.CloseWrite()
	}()
	got, err := io.ReadAll(pb)
	if err != nil || len(got) != len(data) {
		t.Fatalf("copied %d bytes (%v), want %d", len(got), err, len(data))
	}
}

func TestWrapLeavesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap changed a connection that is not a *net.TCPConn")
	}
}

func TestNoAllocations(t *testing.T) {
	c, p := pair(t)
	buf := make([]byte, 64)
	msg := []byte("ping")
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p, buf[:4]); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per exchange, want 0", allocs)
	}
}

// A write deadline in the past fails a write the socket would take at
// once (the direct path must not skip it); clearing it writes again.
func TestWriteDeadlinePastFailsAtOnce(t *testing.T) {
	c, p := pair(t)
	for _, set := range []func(time.Time) error{c.SetWriteDeadline, c.SetDeadline} {
		set(time.Unix(1, 0))
		if n, err := c.Write([]byte("x")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write with a past deadline = %d, %v; want 0, os.ErrDeadlineExceeded", n, err)
		}
		set(time.Time{})
		if n, err := c.Write([]byte("y")); n != 1 || err != nil {
			t.Fatalf("Write after clearing the deadline = %d, %v", n, err)
		}
		got := make([]byte, 1)
		if _, err := io.ReadFull(p, got); err != nil || string(got) != "y" {
			t.Fatalf("peer read %q, %v; want \"y\"", got, err)
		}
	}
}

// A write to a connection the peer reset fails (a direct write's error is
// reported as the RawConn path's).
func TestWriteAfterResetIsAnError(t *testing.T) {
	c, p := pair(t)
	p.(*net.TCPConn).SetLinger(0)
	p.Close()
	if _, err := c.Read(make([]byte, 8)); err == nil {
		t.Fatal("Read after a reset succeeded")
	}
	var err error
	for range 3 { // the first write after a reset may still be taken
		if _, err = c.Write([]byte("x")); err != nil {
			break
		}
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write after a reset: %v, want a write *net.OpError", err)
	}
}

// Close does not close the descriptor while a direct write holds it (the
// kernel could otherwise give the number to another file under the write).
func TestCloseWaitsForDirectWrite(t *testing.T) {
	c, _ := pair(t)
	c.fdmu.RLock() // as tryWrite holds it around its system call
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	for range 100 {
		runtime.Gosched()
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a direct write held the descriptor", err)
	default:
	}
	if _, err := unix.FcntlInt(c.fd, unix.F_GETFD, 0); err != nil {
		t.Fatalf("the descriptor was closed under a direct write: %v", err)
	}
	c.fdmu.RUnlock()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n, err := c.Write([]byte("x")); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %d, %v; want 0, net.ErrClosed", n, err)
	}
}

// Writers racing Close end with net.ErrClosed, and no byte written after
// Close reaches a socket that reused the descriptor's number.
func TestWritesRacingClose(t *testing.T) {
	c, p := pair(t)
	go io.Copy(io.Discard, p)
	fd := int(c.fd)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := c.Write([]byte("stray")); err != nil {
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("Write racing Close: %v, want net.ErrClosed", err)
					}
					return
				}
			}
		}()
	}
	for range 50 {
		runtime.Gosched()
	}
	c.Close()
	// Sockets opened now may get the closed descriptor's number.
	var reused [][2]int
	for range 8 {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		reused = append(reused, fds)
	}
	wg.Wait()
	for _, fds := range reused {
		for i, f := range fds {
			if f == fd {
				if n, _ := unix.Read(fds[1-i], make([]byte, 16)); n > 0 {
					t.Errorf("%d bytes written after Close reached the socket that reused descriptor %d", n, fd)
				}
			}
		}
		unix.Close(fds[0])
		unix.Close(fds[1])
	}
}
