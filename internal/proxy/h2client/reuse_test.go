package h2client

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// answerEach answers every request once its END_STREAM arrived (or at
// once with early) with x-n: the request's ordinal, a body "body-n" and,
// when trailers is set, a trailer t: n. Requests whose :path is /hang get
// no answer.
func answerEach(early, trailers bool) func(sc *serverConn) {
	return func(sc *serverConn) {
		n := 0
		answer := func(id uint32) {
			n++
			v := strconv.Itoa(n)
			sc.writeHeaders(id, false, ":status", "200", "x-n", v)
			sc.fr.WriteData(id, !trailers, []byte("body-"+v))
			if trailers {
				sc.writeHeaders(id, true, "t", v)
			}
		}
		for {
			f, err := sc.next()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				if f.PseudoValue("path") == "/hang" {
					continue
				}
				if f.StreamEnded() || early {
					answer(f.StreamID)
				}
			case *http2.DataFrame:
				if f.StreamEnded() && !early {
					answer(f.StreamID)
				}
			}
		}
	}
}

func freeStreams(c *Conn) []*Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Stream(nil), c.free...)
}

// TestStreamsAreReused: a closed exchange's Stream serves the next one
// (with its deadline timer and its context watch), and nothing of the
// first exchange shows in the second: head, body, trailers.
func TestStreamsAreReused(t *testing.T) {
	c := dial(t, startRaw(t, answerEach(false, true)), Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first *Stream
	for i := 1; i <= 3; i++ {
		st, err := roundTrip(t, c, ctx, &Request{Method: "GET", Path: "/", ContentLength: -1, Deadline: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			first = st
		} else if st != first {
			t.Errorf("exchange %d got a new Stream, want the first one again", i)
		}
		b, err := io.ReadAll(st)
		v := strconv.Itoa(i)
		if err != nil || string(b) != "body-"+v || st.Header.Value("x-n") != v || st.Trailers().Value("t") != v || len(st.Header) != 1 {
			t.Errorf("exchange %d: body %q, %v, head %v, trailers %v", i, b, err, st.Header, st.Trailers())
		}
		st.Close()
	}
}

// TestStreamNotReusedWhileItsCallbacksMayRun: a Stream whose deadline
// fired is dropped, not reused (its timer's function ran); one whose body
// writer still runs is reused only once the writer returned.
func TestStreamNotReusedWhileItsCallbacksMayRun(t *testing.T) {
	c := dial(t, startRaw(t, answerEach(true, false)), Config{})
	_, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Path: "/hang", ContentLength: -1, Deadline: time.Now().Add(20 * time.Millisecond)})
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("deadline: %v", err)
	}
	if n := len(freeStreams(c)); n != 0 {
		t.Errorf("%d Streams kept after the deadline fired, want 0", n)
	}

	// An early answer while the body writer waits for the request body.
	pr, pw := io.Pipe()
	st, err := roundTrip(t, c, context.Background(), &Request{Method: "POST", Path: "/", ContentLength: -1, BodyStream: pr})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(st); err != nil || string(b) != "body-1" {
		t.Fatalf("early answer: %q, %v", b, err)
	}
	st.Close()
	if free := freeStreams(c); len(free) != 0 {
		t.Fatal("Stream kept while its body writer runs")
	}
	pw.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if free := freeStreams(c); len(free) == 1 && free[0] == st {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Stream was not kept once its body writer returned")
		}
	}
}

// readyBody is a streamed body that has ready (with end saying the body
// ends there) and then, through Read, rest.
type readyBody struct {
	ready  string
	end    bool
	rest   io.Reader
	taken  bool
	tryErr error
}

func (b *readyBody) TryRead(p []byte) (int, bool, error) {
	if b.taken {
		return 0, false, nil
	}
	b.taken = true
	if b.tryErr != nil {
		return 0, false, b.tryErr
	}
	return copy(p, b.ready), b.end, nil
}

func (b *readyBody) Read(p []byte) (int, error) {
	if b.end {
		return 0, io.EOF
	}
	return b.rest.Read(p)
}

var _ ReadyReader = (*readyBody)(nil)

// TestReadyBodyGoesWithTheHead: what a streamed body already holds goes
// out with the request head; a body that ended needs no body writer (its
// Stream is reusable as soon as it is closed); the rest of one that did
// not end follows; a body whose TryRead fails is read as usual.
func TestReadyBodyGoesWithTheHead(t *testing.T) {
	got := make(chan string, 4)
	s := startRaw(t, func(sc *serverConn) {
		var body []byte
		for {
			f, err := sc.next()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				body = body[:0]
				if f.StreamEnded() {
					t.Error("HEADERS ended the stream of a request with a body")
				}
			case *http2.DataFrame:
				body = append(body, f.Data()...)
				if f.StreamEnded() {
					got <- string(body)
					sc.writeHeaders(f.StreamID, true, ":status", "200")
				}
			}
		}
	})
	c := dial(t, s, Config{})
	for _, tc := range []struct {
		name string
		body *readyBody
		want string
	}{
		{"ended", &readyBody{ready: "hello", end: true}, "hello"},
		{"ended empty", &readyBody{end: true}, ""},
		{"more to come", &readyBody{ready: "ab", rest: strings.NewReader("cd")}, "abcd"},
		{"TryRead fails", &readyBody{tryErr: errors.New("not now"), rest: strings.NewReader("xyz")}, "xyz"},
	} {
		st, err := roundTrip(t, c, context.Background(), &Request{Method: "POST", Path: "/", ContentLength: -1, BodyStream: tc.body})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if b := <-got; b != tc.want {
			t.Errorf("%s: body %q, want %q", tc.name, b, tc.want)
		}
		io.Copy(io.Discard, st)
		st.Close()
		if tc.body.end {
			if free := freeStreams(c); len(free) != 1 || free[0] != st {
				t.Errorf("%s: the Stream is not free at once (a body writer holds it)", tc.name)
			}
		}
	}
}

// stoppableBody is a streamed body whose Read waits until StopBody; it
// records Reads that began after StopBody returned.
type stoppableBody struct {
	mu        sync.Mutex
	cond      sync.Cond
	stopped   bool
	reading   bool
	lateReads int
}

func (b *stoppableBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		b.lateReads++
		return 0, errors.New("stopped")
	}
	b.reading = true
	b.cond.Broadcast()
	for !b.stopped {
		b.cond.Wait()
	}
	b.reading = false
	return 0, errors.New("stopped")
}

func (b *stoppableBody) StopBody() {
	b.mu.Lock()
	b.stopped = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// TestCloseLetsGoOfAStoppableBody: after an early answer, Close stops a
// BodyStopper body and returns only once the body writer let go of it:
// no Read of it is in progress or begins afterwards (a proxy recycles its
// downstream stream, the body, once Close returned).
func TestCloseLetsGoOfAStoppableBody(t *testing.T) {
	c := dial(t, startRaw(t, answerEach(true, false)), Config{})
	for i := range 5 {
		body := &stoppableBody{}
		body.cond.L = &body.mu
		st, err := roundTrip(t, c, context.Background(), &Request{Method: "POST", Path: "/", ContentLength: -1, BodyStream: body})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(st); err != nil {
			t.Fatal(err)
		}
		body.mu.Lock()
		for !body.reading {
			body.cond.Wait() // the writer waits in Read
		}
		body.mu.Unlock()
		st.Close()
		body.mu.Lock()
		reading, late := body.reading, body.lateReads
		body.mu.Unlock()
		if reading || late > 0 {
			t.Fatalf("exchange %d: after Close, a Read in progress %v, Reads begun late %d", i, reading, late)
		}
		if free := freeStreams(c); len(free) != 1 || free[0] != st {
			t.Fatalf("exchange %d: the Stream was not kept at Close (%d free)", i, len(free))
		}
	}
}

// TestLastBytesComeWithEOF: once the stream ended whole, the read that
// takes the last body bytes returns io.EOF with them (a forwarder then
// writes them with the response's end and trailers, without a flush of
// their own); while more may come, and when the stream failed, it does
// not.
func TestLastBytesComeWithEOF(t *testing.T) {
	c := dial(t, startRaw(t, answerEach(false, true)), Config{})
	st, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Path: "/", ContentLength: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Wait for the trailers (the stream's end) before reading.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		ended := st.ended
		c.mu.Unlock()
		if ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream did not end")
		}
	}
	p := make([]byte, 4)
	if n, err := st.Read(p); n != 4 || err != nil {
		t.Fatalf("first read: %d, %v; want 4, nil (2 bytes left)", n, err)
	}
	if n, err := st.Read(p); n != 2 || err != io.EOF || string(p[:n]) != "-1" {
		t.Fatalf("last read: %d %q, %v; want 2 \"-1\", EOF", n, p[:n], err)
	}
	if tr := st.Trailers(); tr.Value("t") != "1" {
		t.Errorf("trailers %v", tr)
	}
}
