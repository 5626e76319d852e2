package h2server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// testHandler answers every request with its body ("echo") unless serve
// is set; started and served receive each stream's target.
type testHandler struct {
	started, served chan string
	serve           func(s *Stream)
	canceled        atomic.Int32
}

func (h *testHandler) Start(s *Stream) { h.started <- s.Target }

func (h *testHandler) Serve(s *Stream) {
	h.served <- s.Target
	if h.serve != nil {
		h.serve(s)
		return
	}
	b, err := io.ReadAll(s)
	if err != nil {
		s.Abort()
		return
	}
	s.WriteHead(200, headers.List{{Name: "content-type", Value: "text/plain"}}, int64(len(b)))
	s.Write(b)
	s.Finish(nil)
}

func (h *testHandler) Cancel(s *Stream, served bool) { h.canceled.Add(1) }

type client struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

// serveTest starts a server connection with cfg (defaults filled in) and
// returns a client that has exchanged SETTINGS.
func serveTest(t *testing.T, cfg Config, h *testHandler) *client {
	t.Helper()
	return serveTestPools(t, cfg, h, &Pools{})
}

// serveTestPools is serveTest with the connection's Pools.
func serveTestPools(t *testing.T, cfg Config, h *testHandler, pools *Pools) *client {
	t.Helper()
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = 100
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 60 << 10
	}
	if cfg.BufferLimit == 0 {
		cfg.BufferLimit = 64 << 10
	}
	if cfg.Window == 0 {
		cfg.Window = 1 << 20
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The listener closes once it accepted: closing it earlier (when
	// serveTest returns) would reset a connection still in its accept
	// queue.
	t.Cleanup(func() { ln.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		Serve(context.Background(), nc, bufio.NewReader(nc), &cfg, h, pools)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the server connection did not end after the client closed")
		}
	})
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(nc, Preface)
	c := &client{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.WriteSettings()
	return c
}

func (c *client) headers(id uint32, end bool, fields ...string) {
	c.t.Helper()
	if err := c.tryHeaders(id, end, fields...); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) tryHeaders(id uint32, end bool, fields ...string) error {
	c.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: end, EndHeaders: true})
}

func (c *client) post(id uint32, end bool, extra ...string) {
	c.headers(id, end, append([]string{":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/" + strconv.Itoa(int(id))}, extra...)...)
}

// next reads frames until one that is not SETTINGS, a SETTINGS ACK,
// WINDOW_UPDATE or PING.
func (c *client) next() http2.Frame {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("reading a frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
			continue
		case *http2.WindowUpdateFrame, *http2.PingFrame:
			continue
		}
		return f
	}
}

// response reads stream id's response: status, body, trailers count.
func (c *client) response(id uint32) (status, body string) {
	c.t.Helper()
	var b bytes.Buffer
	for {
		switch f := c.next().(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				c.t.Fatalf("HEADERS of stream %d, want %d", f.StreamID, id)
			}
			if s := f.PseudoValue("status"); s != "" {
				status = s
			}
			if f.StreamEnded() {
				return status, b.String()
			}
		case *http2.DataFrame:
			b.Write(f.Data())
			if f.StreamEnded() {
				return status, b.String()
			}
		case *http2.RSTStreamFrame:
			c.t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		case *http2.GoAwayFrame:
			c.t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}

func recv(t *testing.T, ch chan string, what string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen", what)
		return ""
	}
}

func none(t *testing.T, ch chan string, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s happened (%s)", what, v)
	case <-time.After(100 * time.Millisecond):
	}
}

func newHandler() *testHandler {
	return &testHandler{started: make(chan string, 16), served: make(chan string, 16)}
}

// A body of known length up to the buffer limit is gathered on the reader:
// no goroutine serves the request until it is complete.
func TestKnownLengthBodyGatheredBeforeServe(t *testing.T) {
	h := newHandler()
	c := serveTest(t, Config{}, h)
	c.post(1, false, "content-length", "10")
	recv(t, h.started, "Start")
	c.fr.WriteData(1, false, []byte("01234"))
	none(t, h.served, "Serve before the body is complete")
	c.fr.WriteData(1, true, []byte("56789"))
	recv(t, h.served, "Serve")
	if st, body := c.response(1); st != "200" || body != "0123456789" {
		t.Fatalf("response %s %q", st, body)
	}
}

// A body of unknown length is served at once and delivered as it arrives
// (gRPC, bidirectional streaming).
func TestUnknownLengthBodyStreams(t *testing.T) {
	h := newHandler()
	got := make(chan string, 4)
	h.serve = func(s *Stream) {
		buf := make([]byte, 16)
		for {
			n, err := s.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				break
			}
		}
		s.WriteHead(200, nil, -1)
		s.Finish(headers.List{{Name: "grpc-status", Value: "0"}})
	}
	c := serveTest(t, Config{}, h)
	c.post(1, false)
	recv(t, h.served, "Serve at the headers")
	c.fr.WriteData(1, false, []byte("first"))
	if v := recv(t, got, "the first DATA reaching the handler"); v != "first" {
		t.Fatalf("read %q", v)
	}
	c.fr.WriteData(1, true, []byte("second"))
	if v := recv(t, got, "the second DATA"); v != "second" {
		t.Fatalf("read %q", v)
	}
	var trailers bool
	for !trailers {
		if f, ok := c.next().(*http2.MetaHeadersFrame); ok && f.StreamEnded() {
			trailers = len(f.RegularFields()) == 1 && f.RegularFields()[0].Value == "0"
			if !trailers {
				t.Fatalf("last HEADERS %v, want grpc-status trailers", f.Fields)
			}
		}
	}
}

// WriteFlush sends a message at once: each one echoed is read by the
// client before it sends the next (bidirectional streaming), the head
// going out with the first.
func TestWriteFlushPingPong(t *testing.T) {
	h := newHandler()
	h.serve = func(s *Stream) {
		s.WriteHead(200, nil, -1)
		buf := make([]byte, 64)
		for {
			n, err := s.Read(buf)
			if n > 0 {
				if _, werr := s.WriteFlush(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
		s.Finish(headers.List{{Name: "grpc-status", Value: "0"}})
	}
	c := serveTest(t, Config{}, h)
	c.post(1, false)
	recv(t, h.served, "Serve at the headers")
	for i, msg := range []string{"one", "two", "three"} {
		c.fr.WriteData(1, false, []byte(msg))
		if i == 0 {
			if f, ok := c.next().(*http2.MetaHeadersFrame); !ok || f.PseudoValue("status") != "200" || f.StreamEnded() {
				t.Fatalf("first frame %v, want the 200 head", f)
			}
		}
		f, ok := c.next().(*http2.DataFrame)
		if !ok || string(f.Data()) != msg || f.StreamEnded() {
			t.Fatalf("got %v, want DATA %q", f, msg)
		}
	}
	c.fr.WriteData(1, true, nil)
	if f, ok := c.next().(*http2.MetaHeadersFrame); !ok || !f.StreamEnded() {
		t.Fatalf("last frame %v, want trailers", f)
	}
}

// A known-length body above the buffer limit is served once the limit
// is passed, and the rest streams.
func TestLargeBodyServedAtLimit(t *testing.T) {
	h := newHandler()
	c := serveTest(t, Config{BufferLimit: 100}, h)
	c.post(1, false, "content-length", "300")
	c.fr.WriteData(1, false, bytes.Repeat([]byte("a"), 100))
	none(t, h.served, "Serve at the limit")
	c.fr.WriteData(1, false, []byte("b"))
	recv(t, h.served, "Serve past the limit")
	c.fr.WriteData(1, true, bytes.Repeat([]byte("c"), 199))
	if st, body := c.response(1); st != "200" || len(body) != 300 {
		t.Fatalf("response %s, %d bytes", st, len(body))
	}
}

// Malformed requests are reset with PROTOCOL_ERROR (RFC 9113 section
// 8.1.1): a body longer or shorter than content-length, connection
// fields, te other than trailers, a missing :path, a repeated
// pseudo-header, pseudo-headers in trailers, an upper-case name, a value
// with leading or trailing whitespace.
func TestMalformedRequestsReset(t *testing.T) {
	h := newHandler()
	c := serveTest(t, Config{}, h)
	expectReset := func(id uint32, code http2.ErrCode) {
		t.Helper()
		for {
			switch f := c.next().(type) {
			case *http2.RSTStreamFrame:
				if f.StreamID != id || f.ErrCode != code {
					t.Fatalf("RST_STREAM %d %v, want %d %v", f.StreamID, f.ErrCode, id, code)
				}
				return
			case *http2.GoAwayFrame:
				t.Fatalf("GOAWAY %v", f.ErrCode)
			}
		}
	}
	c.post(1, false, "content-length", "3")
	c.fr.WriteData(1, true, []byte("toolong"))
	expectReset(1, http2.ErrCodeProtocol)
	c.post(3, false, "content-length", "3")
	c.fr.WriteData(3, true, []byte("a"))
	expectReset(3, http2.ErrCodeProtocol)
	c.post(5, true, "connection", "close")
	expectReset(5, http2.ErrCodeProtocol)
	c.post(7, true, "te", "gzip")
	expectReset(7, http2.ErrCodeProtocol)
	c.headers(9, true, ":method", "GET", ":scheme", "http", ":authority", "a")
	expectReset(9, http2.ErrCodeProtocol)
	c.headers(13, true, ":method", "GET", ":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/")
	expectReset(13, http2.ErrCodeProtocol)
	c.post(15, false)
	c.headers(15, true, ":path", "/trailer")
	expectReset(15, http2.ErrCodeProtocol)
	c.headers(17, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "Upper", "x")
	expectReset(17, http2.ErrCodeProtocol)
	// RFC 9113 section 8.2.1: no leading or trailing SP/HTAB in a value.
	c.headers(19, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "x", "v ")
	expectReset(19, http2.ErrCodeProtocol)
	c.headers(21, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "x", "\tv")
	expectReset(21, http2.ErrCodeProtocol)
	c.headers(23, true, ":method", "GET", ":scheme", "http", ":authority", " a", ":path", "/")
	expectReset(23, http2.ErrCodeProtocol)
	// The connection is still usable.
	c.headers(25, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/ok")
	if st, _ := c.response(25); st != "200" {
		t.Fatalf("status %s", st)
	}
}

// The client's window is honoured: with SETTINGS_INITIAL_WINDOW_SIZE 1
// the response comes one byte per DATA frame, as WINDOW_UPDATEs allow.
func TestResponseHonoursClientWindow(t *testing.T) {
	h := newHandler()
	c := serveTest(t, Config{}, h)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	c.post(1, false)
	c.fr.WriteData(1, true, []byte("xyz"))
	var got []string
	for len(got) < 3 {
		switch f := c.next().(type) {
		case *http2.DataFrame:
			if len(f.Data()) > 1 {
				t.Fatalf("DATA of %d bytes with a window of 1", len(f.Data()))
			}
			if len(f.Data()) == 1 {
				got = append(got, string(f.Data()))
				c.fr.WriteWindowUpdate(1, 1)
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("reset %v", f.ErrCode)
		}
	}
	if s := got[0] + got[1] + got[2]; s != "xyz" {
		t.Fatalf("body %q", s)
	}
}

// Streams beyond MAX_CONCURRENT_STREAMS are refused.
func TestMaxConcurrentStreams(t *testing.T) {
	h := newHandler()
	block := make(chan struct{})
	h.serve = func(s *Stream) {
		<-block
		s.WriteHead(200, nil, 0)
		s.Finish(nil)
	}
	c := serveTest(t, Config{MaxConcurrentStreams: 1}, h)
	defer close(block)
	c.post(1, true)
	recv(t, h.served, "Serve")
	c.post(3, true)
	for {
		if f, ok := c.next().(*http2.RSTStreamFrame); ok {
			if f.StreamID != 3 || f.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM %d %v", f.StreamID, f.ErrCode)
			}
			return
		}
	}
}

// An empty response is one HEADERS frame with END_STREAM and one
// content-length.
func TestEmptyResponseOneFrame(t *testing.T) {
	h := newHandler()
	c := serveTest(t, Config{}, h)
	c.headers(1, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/")
	f, ok := c.next().(*http2.MetaHeadersFrame)
	if !ok || !f.StreamEnded() {
		t.Fatalf("first frame %v, want HEADERS with END_STREAM", f)
	}
	n := 0
	for _, hf := range f.Fields {
		if hf.Name == "content-length" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d content-length fields: %v", n, f.Fields)
	}
}

// Rapid reset (CVE-2023-44487): a client that resets most of its streams
// is cut off.
func TestRapidResetCut(t *testing.T) {
	h := newHandler()
	h.started = make(chan string, 2000)
	h.served = make(chan string, 2000)
	var reason atomic.Value
	c := serveTest(t, Config{MaxConcurrentStreams: 1000, OnFlood: func(r string) { reason.Store(r) }}, h)
	go func() {
		for {
			if _, err := c.fr.ReadFrame(); err != nil {
				return
			}
		}
	}()
	for id := uint32(1); id < 2000; id += 2 {
		if c.tryHeaders(id, false, ":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/", "content-length", "5") != nil ||
			c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for reason.Load() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if reason.Load() == nil {
		t.Fatal("the connection was not cut")
	}
	if n := len(h.served); n > 0 {
		t.Fatalf("%d reset streams were served", n)
	}
}

// Draining sends GOAWAY; a stream in flight completes, then the
// connection closes.
func TestDrainGoAway(t *testing.T) {
	h := newHandler()
	release := make(chan struct{})
	h.serve = func(s *Stream) {
		<-release
		s.WriteHead(200, nil, 2)
		s.Write([]byte("ok"))
		s.Finish(nil)
	}
	drain, stop := context.WithCancel(context.Background())
	c := serveTest(t, Config{Drain: drain}, h)
	c.post(1, true)
	recv(t, h.served, "Serve")
	stop()
	if f, ok := c.next().(*http2.GoAwayFrame); !ok || f.ErrCode != http2.ErrCodeNo || f.LastStreamID != 1 {
		t.Fatalf("frame %v, want GOAWAY NO_ERROR naming stream 1", f)
	}
	close(release)
	if st, body := c.response(1); st != "200" || body != "ok" {
		t.Fatalf("response %s %q", st, body)
	}
	if _, err := c.fr.ReadFrame(); err == nil {
		t.Fatal("the connection stayed open after its last stream")
	}
}

// TestStalledReaderLosesConnection: a client that opens its windows and
// then stops reading cannot hold the connection's writer forever: the
// socket write deadline cuts the connection and the handler's writes fail.
func TestStalledReaderLosesConnection(t *testing.T) {
	h := newHandler()
	werr := make(chan error, 1)
	h.serve = func(s *Stream) {
		s.WriteHead(200, nil, -1)
		chunk := make([]byte, 64<<10)
		for i := 0; i < 2048; i++ { // 128 MiB, far beyond the socket buffers
			if _, err := s.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
		werr <- s.Finish(nil)
	}
	c := serveTest(t, Config{WriteTimeout: 200 * time.Millisecond}, h)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow})
	c.fr.WriteWindowUpdate(0, maxWindow-minWindow)
	c.headers(1, true, ":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/big")
	recv(t, h.served, "serve")
	select {
	case err := <-werr:
		if err == nil {
			t.Fatal("128 MiB went to a client that reads nothing")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the handler's write is still blocked on a client that stopped reading")
	}
	// The connection is closed: reading what was buffered ends in an error.
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c.nc); err != nil && !isReset(err) {
		t.Fatalf("the connection was not closed: %v", err)
	}
}

func isReset(err error) bool {
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// TryRead hands over what of a streamed body arrived without waiting for
// more, and says when the body ended with it; Read then sees the end.
func TestTryReadTakesWhatArrived(t *testing.T) {
	h := newHandler()
	type result struct {
		data string
		done bool
		err  error
	}
	step := make(chan struct{})
	got := make(chan result, 4)
	h.serve = func(s *Stream) {
		buf := make([]byte, 16)
		n, done, err := s.TryRead(buf)
		got <- result{string(buf[:n]), done, err}
		for range 2 {
			<-step
			// The DATA was written before step: wait until it was read.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				n, done, err = s.TryRead(buf)
				if n > 0 || done || err != nil || time.Now().After(deadline) {
					break
				}
			}
			got <- result{string(buf[:n]), done, err}
		}
		if n, err := s.Read(buf); n != 0 || err != io.EOF {
			t.Errorf("Read after the end: %d, %v", n, err)
		}
		s.WriteHead(200, nil, 0)
		s.Finish(nil)
	}
	c := serveTest(t, Config{}, h)
	c.post(1, false)
	if r := <-got; r != (result{}) {
		t.Errorf("TryRead before any DATA: %+v", r)
	}
	c.fr.WriteData(1, false, []byte("ab"))
	step <- struct{}{}
	if r := <-got; r != (result{data: "ab"}) {
		t.Errorf("TryRead after DATA: %+v", r)
	}
	c.fr.WriteData(1, true, []byte("cd"))
	step <- struct{}{}
	if r := <-got; r != (result{data: "cd", done: true}) {
		t.Errorf("TryRead after the last DATA: %+v", r)
	}
	if st, _ := c.response(1); st != "200" {
		t.Errorf("status %s", st)
	}
}

// workers counts p's worker goroutines, from every goroutine's stack (the
// process's other goroutines, earlier tests' workers among them, come and
// go, so runtime.NumGoroutine cannot say whether a burst started workers),
// and those of them waiting in the worker loop itself for the next request.
func workers(p *Pools) (all, waiting int) {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	frame := fmt.Sprintf("h2server.(*Pools).worker(%p", p)
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, frame) {
			continue
		}
		all++
		if lines := strings.SplitN(g, "\n", 3); len(lines) > 1 && strings.Contains(lines[1], frame) {
			waiting++
		}
	}
	return all, waiting
}

func workerCount(p *Pools) int { n, _ := workers(p); return n }

// TestBurstWorkersKept: after a burst of more concurrent requests than the
// workers always kept, the extra workers wait for the next burst instead
// of exiting (which made every burst start goroutines anew); they exit
// once SpareIdle passed without work.
func TestBurstWorkersKept(t *testing.T) {
	for _, spare := range []time.Duration{0, time.Millisecond} {
		const burst = maxIdleWorkers + 4
		h := newHandler()
		release := make(chan struct{})
		h.serve = func(s *Stream) {
			<-release
			s.WriteHead(200, nil, 0)
			s.Finish(nil)
		}
		pools := &Pools{SpareIdle: spare}
		c := serveTestPools(t, Config{}, h, pools)
		id := uint32(1)
		round := func() int {
			for range burst {
				c.post(id, true)
				id += 2
			}
			for range burst {
				recv(t, h.started, "Start")
				recv(t, h.served, "Serve")
			}
			n, _ := workers(pools) // every worker busy
			for range burst {
				release <- struct{}{}
			}
			for ended := 0; ended < burst; {
				if f, ok := c.next().(*http2.MetaHeadersFrame); ok && f.StreamEnded() {
					ended++
				}
			}
			// Every worker waits for work again, in the worker loop (idle
			// counts a worker just before it waits).
			for deadline := time.Now().Add(10 * time.Second); spare == 0; time.Sleep(time.Millisecond) {
				if _, w := workers(pools); pools.idle.Load() >= burst && w >= burst {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d workers idle 10 s after the burst, want %d", pools.idle.Load(), burst)
				}
			}
			return n
		}
		busy := round()
		if spare == 0 {
			if again := round(); again > busy {
				t.Errorf("the second burst started %d workers, want 0 (the first burst's workers wait for it)", again-busy)
			}
			continue
		}
		// The spare workers exit: only maxIdleWorkers stay.
		for deadline := time.Now().Add(10 * time.Second); workerCount(pools) > busy-(burst-maxIdleWorkers); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d workers with every worker busy, %d 10 s after the burst; want %d spare workers gone", busy, workerCount(pools), burst-maxIdleWorkers)
			}
		}
	}
}

// TestCookieCrumbsJoined: cookie fields are joined with "; " (RFC 9113
// section 8.2.3); empty crumbs add nothing, so the value never starts or
// ends with the delimiter.
func TestCookieCrumbsJoined(t *testing.T) {
	for _, tc := range []struct {
		crumbs []string
		want   string
	}{
		{[]string{"a=1", "b=2"}, "a=1; b=2"},
		{[]string{"", "a=1", "", "b=2", ""}, "a=1; b=2"},
		{[]string{"", "", ""}, ""},
		{[]string{"a=1"}, "a=1"},
	} {
		fields := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "a"}, {Name: ":path", Value: "/"}}
		for _, c := range tc.crumbs {
			fields = append(fields, hpack.HeaderField{Name: "cookie", Value: c})
		}
		var r Request
		if msg := readRequest(&r, fields, true, false); msg != "" {
			t.Fatalf("%q: %s", tc.crumbs, msg)
		}
		var got []string
		for _, f := range r.Header {
			if f.Name == "cookie" {
				got = append(got, f.Value)
			}
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("crumbs %q: cookie fields %q, want one %q", tc.crumbs, got, tc.want)
		}
	}
}
