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
		if n, err := vecWrite(c, 1)([]byte("xz")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("WriteVec with a past deadline = %d, %v; want 0, os.ErrDeadlineExceeded", n, err)
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
	if n, err := c.WriteVec([]byte("x"), []byte("y")); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteVec after Close = %d, %v; want 0, net.ErrClosed", n, err)
	}
}

// Writers racing Close end with net.ErrClosed, and no byte written after
// Close reaches a socket that reused the descriptor's number.
func TestWritesRacingClose(t *testing.T) {
	t.Run("Write", func(t *testing.T) { testWritesRacingClose(t, (*Conn).Write) })
	t.Run("WriteVec", func(t *testing.T) {
		testWritesRacingClose(t, func(c *Conn, p []byte) (int, error) { return vecWrite(c, 2)(p) })
	})
}

func testWritesRacingClose(t *testing.T, write func(*Conn, []byte) (int, error)) {
	c, p := pair(t)
	go io.Copy(io.Discard, p)
	fd := int(c.fd)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := write(c, []byte("stray")); err != nil {
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

// vecWrite writes p as two buffers split at cut (WriteVec).
func vecWrite(c *Conn, cut int) func([]byte) (int, error) {
	return func(p []byte) (int, error) {
		cut := min(cut, len(p))
		return c.WriteVec(p[:cut], p[cut:])
	}
}

func TestSkip(t *testing.T) {
	a, b := []byte("head"), []byte("body!")
	for n := 0; n <= len(a)+len(b); n++ {
		x, y := skip(a, b, n)
		got := string(x) + string(y)
		if want := (string(a) + string(b))[n:]; got != want {
			t.Errorf("skip(%d) = %q + %q, want %q", n, x, y, want)
		}
		if len(x) == 0 && len(y) > 0 {
			t.Errorf("skip(%d) left the first buffer empty before the second", n)
		}
	}
}

// WriteVec's two buffers arrive as one write of both would carry them,
// whichever of them is empty, in one system call.
func TestWriteVec(t *testing.T) {
	c, p := pair(t)
	cases := [][2]string{{"head ", "body"}, {"", "body"}, {"head", ""}, {"", ""}, {"h", "b"}}
	for _, tc := range cases {
		n, err := c.WriteVec([]byte(tc[0]), []byte(tc[1]))
		want := tc[0] + tc[1]
		if n != len(want) || err != nil {
			t.Fatalf("WriteVec(%q, %q) = %d, %v", tc[0], tc[1], n, err)
		}
		got := make([]byte, len(want))
		if _, err := io.ReadFull(p, got); err != nil || string(got) != want {
			t.Fatalf("peer read %q, %v; want %q", got, err, want)
		}
	}
}

// A WriteVec larger than the socket buffers is taken in parts, the first
// ones directly, then on the RawConn's path after EAGAIN; each part resumes
// where the last stopped, within the first buffer, at the boundary or
// within the second, and the peer reads both buffers' bytes in order.
func TestWriteVecPartialWrites(t *testing.T) {
	for _, sizes := range [][2]int{{300 << 10, 500 << 10}, {1, 600 << 10}, {600 << 10, 1}} {
		c, p := pair(t)
		c.SetWriteBuffer(4096) // the kernel's minimum: many partial writes
		a := make([]byte, sizes[0])
		b := make([]byte, sizes[1])
		for i := range a {
			a[i] = byte(i * 7)
		}
		for i := range b {
			b[i] = byte(i*13 + 1)
		}
		done := make(chan error, 1)
		go func() {
			n, err := c.WriteVec(a, b)
			if err == nil && n != len(a)+len(b) {
				err = errors.New("short WriteVec without an error")
			}
			c.CloseWrite()
			done <- err
		}()
		// A slow reader: small reads, so the writer meets a full socket
		// (EAGAIN) again and again.
		var got []byte
		buf := make([]byte, 1500)
		for {
			n, err := p.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append(append([]byte{}, a...), b...)) {
			t.Fatalf("sizes %v: peer read %d bytes, not the two buffers' %d in order", sizes, len(got), len(a)+len(b))
		}
	}
}

// A WriteVec that meets a full socket at once (the direct writev takes
// nothing: EAGAIN) waits on the netpoller and then writes everything.
func TestWriteVecAfterEAGAIN(t *testing.T) {
	c, p := pair(t)
	c.SetWriteBuffer(4096)
	// Fill the socket: a direct write now takes nothing.
	fill := 0
	junk := make([]byte, 4096)
	for {
		n, e := writeOnce(c.fd, junk, nil)
		if e == unix.EAGAIN {
			break
		}
		if e != 0 {
			t.Fatal(e)
		}
		fill += n
	}
	if n, e := c.tryWrite([]byte("head"), []byte("body")); n != 0 || e != 0 {
		t.Fatalf("tryWrite on a full socket = %d, %v; want 0, 0", n, e)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.WriteVec([]byte("head"), []byte("body"))
		c.CloseWrite()
		done <- err
	}()
	got, err := io.ReadAll(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != fill+8 || string(got[fill:]) != "headbody" {
		t.Fatalf("peer read %d bytes ending %q, want %d ending \"headbody\"", len(got), got[max(0, len(got)-8):], fill+8)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A write deadline sends WriteVec down the RawConn's path, which enforces
// it: a past one fails at once, a near one stops a write the peer does not
// read, with what was written counted.
func TestWriteVecDeadlines(t *testing.T) {
	c, p := pair(t)
	c.SetWriteDeadline(time.Unix(1, 0))
	if n, err := c.WriteVec([]byte("x"), []byte("y")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteVec with a past deadline = %d, %v; want 0, os.ErrDeadlineExceeded", n, err)
	}
	c.SetWriteDeadline(time.Time{})
	if n, err := c.WriteVec([]byte("x"), []byte("y")); n != 2 || err != nil {
		t.Fatalf("WriteVec after clearing the deadline = %d, %v", n, err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(p, got); err != nil || string(got) != "xy" {
		t.Fatalf("peer read %q, %v; want \"xy\"", got, err)
	}
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	big := make([]byte, 32<<20)
	n, err := c.WriteVec(big, big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= 2*len(big) {
		t.Fatalf("WriteVec past its deadline = %d, %v", n, err)
	}
}

func TestWriteVecNoAllocations(t *testing.T) {
	c, p := pair(t)
	buf := make([]byte, 64)
	head, body := []byte("head"), []byte("body")
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.WriteVec(head, body); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p, buf[:8]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per WriteVec, want 0", allocs)
	}
}

// countingWriter counts its Writes.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

// wrapper passes WriteVec on, as the inspectors' connection wrappers do.
type wrapper struct{ net.Conn }

func (w wrapper) WriteVec(a, b []byte) (int, error) { return WriteVec(w.Conn, a, b) }

// WriteVec uses a writer's own WriteVec, through wrappers that pass it
// on, and else writes the two buffers with two Writes.
func TestWriteVecFunc(t *testing.T) {
	var w countingWriter
	if n, err := WriteVec(&w, []byte("head"), []byte("body")); n != 8 || err != nil || w.String() != "headbody" || w.writes != 2 {
		t.Fatalf("WriteVec on a plain writer = %d, %v: %q in %d writes", n, err, w.String(), w.writes)
	}
	c, p := pair(t)
	if n, err := WriteVec(wrapper{c}, []byte("head"), []byte("body")); n != 8 || err != nil {
		t.Fatalf("WriteVec through a wrapper = %d, %v", n, err)
	}
	got := make([]byte, 8)
	if _, err := io.ReadFull(p, got); err != nil || string(got) != "headbody" {
		t.Fatalf("peer read %q, %v", got, err)
	}
}
