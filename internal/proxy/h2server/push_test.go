package h2server

import (
	"bytes"
	"net"
	"runtime"
	"testing"

	"golang.org/x/net/http2"
)

// TestPushNeedsWindow: a push the stream's window does not cover sends
// nothing (the caller writes it, as the window allows).
func TestPushNeedsWindow(t *testing.T) {
	h := newHandler()
	pushed := make(chan bool, 1)
	h.serve = func(s *Stream) {
		s.WriteHead(200, nil, -1)
		s.Flush()
		sent, _ := s.Push([]byte("xyz"))
		pushed <- sent
		if !sent {
			s.Write([]byte("xyz"))
		}
		s.Finish(nil)
	}
	c := serveTest(t, Config{}, h)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 2})
	// The SETTINGS ACK says the window of 2 applies.
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && sf.IsAck() {
			break
		}
	}
	c.headers(1, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/")
	var got []byte
	for len(got) < 3 {
		switch f := c.next().(type) {
		case *http2.DataFrame:
			got = append(got, f.Data()...)
			c.fr.WriteWindowUpdate(1, uint32(len(f.Data())))
		case *http2.RSTStreamFrame:
			t.Fatalf("reset %v", f.ErrCode)
		}
	}
	if sent := <-pushed; sent || string(got) != "xyz" {
		t.Fatalf("push with a window of 2: sent %v; body %q", sent, got)
	}
}

// TestPushStallsOnFullSocket: pushes to a client that reads nothing go out
// until the socket is full; then what the socket did not take waits in
// the connection (at most one push's frame and buffer), Push reports it
// stalled and sends nothing more, and Flush waits until the client reads:
// every byte arrives, in order.
func TestPushStallsOnFullSocket(t *testing.T) {
	h := newHandler()
	const size = 16384
	type result struct {
		frames, pending int
		more            bool // a push after the stall was sent
	}
	res := make(chan result, 1)
	h.serve = func(s *Stream) {
		s.WriteHead(200, nil, -1)
		s.Flush()
		var r result
		for {
			p := bytes.Repeat([]byte{byte(r.frames)}, size)
			sent, stalled := s.Push(p)
			for !sent {
				// The connection's writer was busy (the reader's control
				// frames) or the client's window not yet applied.
				runtime.Gosched()
				sent, stalled = s.Push(p)
			}
			r.frames++
			if stalled {
				break
			}
		}
		s.c.wmu.Lock()
		r.pending = len(s.c.pending)
		s.c.wmu.Unlock()
		r.more, _ = s.Push([]byte{byte(r.frames)})
		res <- r
		s.Flush()
		s.Finish(nil)
	}
	c := serveTest(t, Config{}, h)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow})
	c.fr.WriteWindowUpdate(0, maxWindow-minWindow)
	c.headers(1, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/")
	r := <-res
	if r.more || r.pending == 0 || r.pending > size+9+8192 {
		t.Fatalf("after %d frames: a push after the stall sent %v, %d bytes pending (want 1 to %d)", r.frames, r.more, r.pending, size+9+8192)
	}
	var got bytes.Buffer
	for {
		f := c.next()
		if d, ok := f.(*http2.DataFrame); ok {
			got.Write(d.Data())
			if d.StreamEnded() {
				break
			}
			continue
		}
		if hf, ok := f.(*http2.MetaHeadersFrame); ok && hf.StreamEnded() {
			break
		}
	}
	b := got.Bytes()
	if len(b) != r.frames*size {
		t.Fatalf("%d bytes arrived, want %d", len(b), r.frames*size)
	}
	for i := 0; i < r.frames; i++ {
		if b[i*size] != byte(i) || b[(i+1)*size-1] != byte(i) {
			t.Fatalf("frame %d out of order", i)
		}
	}
}

// TestRawSocketNeedsSocket: a connection that is not a socket (a pipe,
// TLS) is never written without waiting.
func TestRawSocketNeedsSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var r rawSocket
	if r.ready(a) || !r.none {
		t.Fatal("a pipe has a socket to write without waiting")
	}
}
