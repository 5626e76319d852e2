package httpproxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

func grpcMessage(payload []byte) []byte {
	b := make([]byte, 5, 5+len(payload))
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

// Messages are counted however the stream is cut into reads: split inside
// a prefix, inside a payload, several per read, empty payloads.
func TestGRPCFramesCount(t *testing.T) {
	var stream []byte
	for _, p := range [][]byte{[]byte("hello"), nil, bytes.Repeat([]byte("x"), 70000), []byte("a"), nil} {
		stream = append(stream, grpcMessage(p)...)
	}
	for _, chunk := range []int{1, 2, 3, 5, 7, 4096, len(stream)} {
		var g grpcFrames
		for i := 0; i < len(stream); i += chunk {
			g.feed(stream[i:min(i+chunk, len(stream))])
		}
		if got := g.count.Load(); got != 5 {
			t.Errorf("chunks of %d: %d messages, want 5", chunk, got)
		}
		if g.skip != 0 || g.hdrN != 0 {
			t.Errorf("chunks of %d: left mid-message (%d, %d)", chunk, g.skip, g.hdrN)
		}
	}
}

// FuzzGRPCFrames: any bytes are counted without panicking, and never as
// more messages than 5-byte prefixes fit.
func FuzzGRPCFrames(f *testing.F) {
	f.Add(grpcMessage([]byte("hi")), 3)
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 1}, 1)
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		var g grpcFrames
		for i := 0; i < len(b); i += chunk {
			g.feed(b[i:min(i+chunk, len(b))])
		}
		if got := g.count.Load(); got > uint64(len(b)/5) {
			t.Fatalf("%d messages in %d bytes", got, len(b))
		}
	})
}

// readyStub is a body whose TryRead hands over data and ends.
type readyStub struct{ data []byte }

func (r *readyStub) Read(p []byte) (int, error) { return 0, nil }

func (r *readyStub) TryRead(p []byte) (int, bool, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, len(r.data) == 0, nil
}

// The telemetry wrapper passes TryRead on (so that a gRPC request goes
// out with its head, in one write) and counts what it took: bytes and
// messages.
func TestCountReaderTryRead(t *testing.T) {
	msgs := append(grpcMessage([]byte("hello")), grpcMessage(nil)...)
	var g grpcFrames
	cr := countReader{r: &readyStub{data: msgs}, frames: &g}
	buf := make([]byte, 64)
	n, done, err := cr.TryRead(buf)
	if n != len(msgs) || !done || err != nil {
		t.Fatalf("TryRead: %d, %v, %v; want %d, true, nil", n, done, err, len(msgs))
	}
	if cr.n != int64(len(msgs)) || g.count.Load() != 2 {
		t.Errorf("counted %d bytes, %d messages; want %d, 2", cr.n, g.count.Load(), len(msgs))
	}
	if n, done, _ := (&countReader{r: bytes.NewReader(msgs)}).TryRead(buf); n != 0 || done {
		t.Errorf("a body without TryRead offered %d bytes (done %v)", n, done)
	}
}

// stopStub is a body that records StopBody.
type stopStub struct {
	io.Reader
	stopped bool
}

func (s *stopStub) StopBody() { s.stopped = true }

// Every wrapper of a request body passes StopBody on to the body it
// wraps, so that h2client's Close can make a downstream stream's body let
// go before the stream is recycled: the telemetry counter, the stream
// timer, and the body whose start the filters buffered.
func TestWrappersPassStopBodyOn(t *testing.T) {
	for name, wrap := range map[string]func(io.Reader) bodyStopper{
		"countReader":  func(r io.Reader) bodyStopper { return &countReader{r: r} },
		"timedBody":    func(r io.Reader) bodyStopper { return &timedBody{r: r} },
		"bufferedBody": func(r io.Reader) bodyStopper { return bufferedBody{io.MultiReader(strings.NewReader("x"), r), r} },
	} {
		body := &stopStub{Reader: strings.NewReader("rest")}
		wrap(body).StopBody()
		if !body.stopped {
			t.Errorf("%s did not pass StopBody on", name)
		}
	}
}
