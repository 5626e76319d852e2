package h2client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/net/http2"
)

// testSink records what the read loop pushes; answer decides each push.
type testSink struct {
	mu     sync.Mutex
	got    bytes.Buffer
	pushes int
	answer func(p []byte) (sent, stalled bool)
	pushed chan struct{} // a token per push
}

func newTestSink(answer func(p []byte) (bool, bool)) *testSink {
	return &testSink{answer: answer, pushed: make(chan struct{}, 1024)}
}

func (k *testSink) Push(p []byte) (sent, stalled bool) {
	sent, stalled = k.answer(p)
	k.mu.Lock()
	k.pushes++
	if sent {
		k.got.Write(p)
	}
	k.mu.Unlock()
	k.pushed <- struct{}{}
	return sent, stalled
}

func accept([]byte) (bool, bool) { return true, false }

// waitParked waits until st's caller waits in ReadPush with nothing to
// return, ready for a push (polled: no timing in the outcome), or the
// exchange ended.
func waitParked(st *Stream) {
	for {
		st.c.mu.Lock()
		ok := st.sink != nil && !st.pushing && !st.flush && st.off == len(st.buf)
		over := st.done || st.err != nil
		st.c.mu.Unlock()
		if ok || over {
			return
		}
		runtime.Gosched()
	}
}

// pushServer answers the request with a head, then runs body with the
// stream's id once the client said go.
func pushServer(t *testing.T, body func(sc *serverConn, id uint32)) *rawServer {
	return startRaw(t, func(sc *serverConn) {
		h, err := sc.headers()
		if err != nil {
			return
		}
		sc.writeHeaders(h.StreamID, false, ":status", "200")
		body(sc, h.StreamID)
		// Hold the connection until the client closes it.
		for {
			if _, err := sc.next(); err != nil {
				return
			}
		}
	})
}

// TestReadPushForwardsOnReadLoop: with the caller parked in ReadPush, every
// DATA frame goes to the sink on the read loop, in order, the caller is
// not woken for it, and the pushed bytes' window goes back to the server
// (it sends 16 times the stream window); the trailers after the last DATA
// end the body, with EOF, after every pushed byte.
func TestReadPushForwardsOnReadLoop(t *testing.T) {
	const frames, size = 64, 16384
	parked := make(chan *Stream, 1)
	sink := newTestSink(accept)
	s := pushServer(t, func(sc *serverConn, id uint32) {
		st := <-parked
		for i := 0; i < frames; i++ {
			waitParked(st)
			sc.fr.WriteData(id, false, bytes.Repeat([]byte{byte(i)}, size))
			<-sink.pushed // the client's read loop took the frame
		}
		waitParked(st)
		sc.writeHeaders(id, true, "grpc-status", "0")
	})
	c := dial(t, s, Config{StreamWindow: 65535, ConnWindow: 1 << 20})
	st, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	parked <- st
	var read bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		n, err := st.ReadPush(buf, sink)
		read.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if read.Len() != 0 {
		t.Errorf("ReadPush returned %d bytes, want all pushed", read.Len())
	}
	want := make([]byte, 0, frames*size)
	for i := 0; i < frames; i++ {
		want = append(want, bytes.Repeat([]byte{byte(i)}, size)...)
	}
	if sink.pushes != frames || !bytes.Equal(sink.got.Bytes(), want) {
		t.Errorf("%d pushes, %d bytes pushed, in order: %v; want %d frames", sink.pushes, sink.got.Len(), bytes.Equal(sink.got.Bytes(), want), frames)
	}
	if tr := st.Trailers(); len(tr) != 1 || tr[0].Value != "0" {
		t.Errorf("trailers %v", tr)
	}
}

// TestReadPushFallsBack: a frame the sink refuses is buffered and read as
// before; a push that stalled makes ReadPush return 0, nil (flush), then
// the body goes on.
func TestReadPushFallsBack(t *testing.T) {
	parked := make(chan *Stream, 1)
	sink := newTestSink(func(p []byte) (bool, bool) {
		switch string(p) {
		case "refused":
			return false, false
		case "stalled":
			return true, true
		}
		return true, false
	})
	s := pushServer(t, func(sc *serverConn, id uint32) {
		st := <-parked
		for _, b := range []string{"refused", "stalled"} {
			waitParked(st)
			sc.fr.WriteData(id, false, []byte(b))
			<-sink.pushed
		}
		waitParked(st)
		sc.fr.WriteData(id, true, []byte("end"))
	})
	c := dial(t, s, Config{StreamWindow: 65535, ConnWindow: 1 << 20})
	st, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	parked <- st
	buf := make([]byte, 64)
	n, err := st.ReadPush(buf, sink)
	if string(buf[:n]) != "refused" || err != nil {
		t.Fatalf("ReadPush after a refused push: %q, %v (%d pushes)", buf[:n], err, sink.pushes)
	}
	n, err = st.ReadPush(buf, sink)
	if n != 0 || err != nil || sink.got.String() != "stalled" {
		t.Fatalf("ReadPush after a stalled push: %d, %v (pushed %q)", n, err, sink.got.String())
	}
	// The frame that ends the stream is never pushed: it is read with EOF.
	n, err = st.ReadPush(buf, sink)
	if string(buf[:n]) != "end" || err != io.EOF {
		t.Fatalf("last frame: %q, %v", buf[:n], err)
	}
	if sink.pushes != 2 {
		t.Errorf("%d pushes, want 2", sink.pushes)
	}
}

// TestReadPushReset: a reset from the server while the caller waits in
// ReadPush ends it with the stream's error.
func TestReadPushReset(t *testing.T) {
	parked := make(chan *Stream, 1)
	sink := newTestSink(accept)
	s := pushServer(t, func(sc *serverConn, id uint32) {
		st := <-parked
		waitParked(st)
		sc.fr.WriteData(id, false, []byte("a"))
		<-sink.pushed
		waitParked(st)
		sc.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	})
	c := dial(t, s, Config{StreamWindow: 65535, ConnWindow: 1 << 20})
	st, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	parked <- st
	n, err := st.ReadPush(make([]byte, 64), sink)
	if n != 0 || err == nil || err == io.EOF || sink.got.String() != "a" {
		t.Fatalf("ReadPush through a reset: %d, %v (pushed %q)", n, err, sink.got.String())
	}
}

// TestReadPushWaitsForPush: a caller woken (the exchange aborted) while
// the read loop is inside Push returns only once the push ended: the
// pushed bytes come before the failure.
func TestReadPushWaitsForPush(t *testing.T) {
	parked := make(chan *Stream, 1)
	inPush, release := make(chan struct{}), make(chan struct{})
	var ended sync.Mutex // held until the push ends
	ended.Lock()
	sink := newTestSink(func([]byte) (bool, bool) {
		close(inPush)
		<-release
		ended.Unlock()
		return true, false
	})
	s := pushServer(t, func(sc *serverConn, id uint32) {
		st := <-parked
		waitParked(st)
		sc.fr.WriteData(id, false, []byte("a"))
	})
	c := dial(t, s, Config{StreamWindow: 65535, ConnWindow: 1 << 20})
	st, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	parked <- st
	go func() {
		<-inPush
		st.Abort(errors.New("test abort"))
		// Release the push once the caller woke (it cleared its sink).
		for parked := true; parked; runtime.Gosched() {
			st.c.mu.Lock()
			parked = st.sink != nil
			st.c.mu.Unlock()
		}
		close(release)
	}()
	n, err := st.ReadPush(make([]byte, 64), sink)
	if !ended.TryLock() {
		t.Error("ReadPush returned while the push was still running")
	}
	if n != 0 || err == nil || sink.got.String() != "a" {
		t.Fatalf("ReadPush: %d, %v (pushed %q)", n, err, sink.got.String())
	}
}
