package h2client

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// scriptConn is a net.Conn whose peer is a script of bytes: reads return
// the script once the client has written its request (two writes: the
// preface and the request's HEADERS), so the run is deterministic.
type scriptConn struct {
	mu     sync.Mutex
	writes int
	gate   chan struct{}
	r      io.Reader
	closed chan struct{}
	once   sync.Once
}

func newScriptConn(script []byte) *scriptConn {
	return &scriptConn{gate: make(chan struct{}), r: bytes.NewReader(script), closed: make(chan struct{})}
}

func (c *scriptConn) Read(p []byte) (int, error) {
	select {
	case <-c.gate:
	case <-c.closed:
		return 0, net.ErrClosed
	}
	return c.r.Read(p)
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	if c.writes == 2 {
		close(c.gate)
	}
	c.mu.Unlock()
	return len(p), nil
}

func (c *scriptConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// frames builds a server script: SETTINGS, then what add writes.
func frames(add func(fr *http2.Framer, block func(kv ...string) []byte)) []byte {
	var out, hb bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	enc := hpack.NewEncoder(&hb)
	fr.WriteSettings()
	add(fr, func(kv ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	})
	return out.Bytes()
}

// FuzzResponseFrames feeds an untrusted upstream's bytes (after its
// SETTINGS) to a connection with one GET in flight: whatever arrives, the
// client must not panic or hang, and a response it accepts must have a
// valid status.
func FuzzResponseFrames(f *testing.F) {
	f.Add(frames(func(fr *http2.Framer, h func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h(":status", "200", "content-length", "5"), EndHeaders: true})
		fr.WriteData(1, false, []byte("hello"))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h("grpc-status", "0"), EndHeaders: true, EndStream: true})
	}))
	f.Add(frames(func(fr *http2.Framer, h func(...string) []byte) {
		b := h(":status", "100")
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b, EndHeaders: true})
		b = h(":status", "404", "x-long", string(bytes.Repeat([]byte("v"), 100)))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:10]})
		fr.WriteContinuation(1, true, b[10:])
		fr.WriteDataPadded(1, true, []byte("x"), []byte{0, 0, 0})
	}))
	f.Add(frames(func(fr *http2.Framer, h func(...string) []byte) {
		fr.WriteWindowUpdate(0, 1<<20)
		fr.WritePing(false, [8]byte{1})
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 0})
		fr.WriteGoAway(1, http2.ErrCodeNo, []byte("bye"))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h(":status", "200", "content-length", "9"), EndHeaders: true})
		fr.WriteData(1, true, []byte("short"))
	}))
	f.Add(frames(func(fr *http2.Framer, h func(...string) []byte) {
		fr.WriteRSTStream(1, http2.ErrCodeRefusedStream)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h(":status", "200"), EndHeaders: true, EndStream: true})
	}))
	f.Add(frames(func(fr *http2.Framer, h func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h(":status", "200", ":path", "/", "connection", "x"), EndHeaders: true})
	}))
	f.Fuzz(func(t *testing.T, script []byte) {
		settings := frames(func(*http2.Framer, func(...string) []byte) {})
		if len(script) >= len(settings) && bytes.Equal(script[:len(settings)], settings) {
			script = script[len(settings):]
		}
		nc := newScriptConn(append(settings, script...))
		c, err := New(nc, Config{StreamWindow: 65535, ConnWindow: 65535})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !c.Reserve() {
			t.Fatal("no slot on a new connection")
		}
		st, err := c.RoundTrip(context.Background(), &Request{Method: "GET", Authority: "x", Path: "/", ContentLength: -1})
		if err != nil {
			return
		}
		if st.Status < 200 || st.Status > 999 {
			t.Errorf("accepted status %d", st.Status)
		}
		n, err := io.Copy(io.Discard, st)
		if err == nil && st.ContentLength >= 0 && n != st.ContentLength {
			t.Errorf("body of %d bytes read whole, content-length %d", n, st.ContentLength)
		}
		st.Trailers()
		st.Close()
	})
}
