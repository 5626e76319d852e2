package h2server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// fuzzConn feeds a client's bytes to the server and discards its writes.
type fuzzConn struct {
	r *bytes.Reader
}

func (c *fuzzConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *fuzzConn) Close() error                       { return nil }
func (c *fuzzConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *fuzzConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *fuzzConn) SetDeadline(t time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(t time.Time) error { return nil }

// fuzzHandler checks what the server hands over and echoes the body.
type fuzzHandler struct {
	t  *testing.T
	wg sync.WaitGroup
}

func (h *fuzzHandler) Start(s *Stream) {
	h.wg.Add(1)
	if s.Method == "" || s.Target == "" {
		h.t.Errorf("stream %d started without :method or target: %+v", s.ID, s.Request)
	}
	if s.Method != "CONNECT" && s.Scheme != "http" && s.Scheme != "https" {
		h.t.Errorf("stream %d started with :scheme %q", s.ID, s.Scheme)
	}
	if s.ContentLength < -1 {
		h.t.Errorf("content length %d", s.ContentLength)
	}
	for _, f := range s.Header {
		// RFC 9113 section 8.2.1: the codec refuses invalid characters
		// and leading or trailing whitespace in values.
		v := f.Value
		if f.Name == "" || f.Name[0] == ':' || !httpguts.ValidHeaderFieldValue(v) ||
			(v != "" && (isWS(v[0]) || isWS(v[len(v)-1]))) {
			h.t.Errorf("stream %d: field %q=%q handed over", s.ID, f.Name, f.Value)
		}
		switch f.Name {
		case "connection", "transfer-encoding", "upgrade", "keep-alive", "proxy-connection":
			h.t.Errorf("stream %d: connection field %q handed over", s.ID, f.Name)
		}
	}
}

func (h *fuzzHandler) Serve(s *Stream) {
	defer h.wg.Done()
	b, err := io.ReadAll(s)
	if err == nil && s.ContentLength >= 0 && int64(len(b)) != s.ContentLength {
		h.t.Errorf("stream %d: body of %d bytes, content-length %d", s.ID, len(b), s.ContentLength)
	}
	s.WriteHead(200, headers.List{{Name: "x", Value: "y"}}, int64(len(b)))
	s.Write(b)
	s.Finish(nil)
}

func (h *fuzzHandler) Cancel(s *Stream, served bool) {
	if !served {
		h.wg.Done()
	}
}

// frames encodes a client's frames after the preface.
func frames(build func(fr *http2.Framer, enc func(fields ...string) []byte)) []byte {
	var b, hb bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	e := hpack.NewEncoder(&hb)
	enc := func(fields ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			e.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	fr.WriteSettings()
	build(fr, enc)
	return b.Bytes()
}

// FuzzServeFrames feeds arbitrary client frames to a server connection:
// request translation from HEADERS/CONTINUATION/DATA must never hand over
// a malformed request, a body that contradicts content-length, or panic.
func FuzzServeFrames(f *testing.F) {
	get := []string{":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/x"}
	post := []string{":method", "POST", ":scheme", "https", ":authority", "a:1", ":path", "/p?q", "content-length", "5", "cookie", "a=1", "cookie", "b=2"}
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(get...), EndStream: true, EndHeaders: true})
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(post...), EndHeaders: true})
		fr.WriteData(1, false, []byte("he"))
		fr.WriteData(1, true, []byte("llo"))
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		block := enc(append(get, "x-long", string(bytes.Repeat([]byte("v"), 100)))...)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block[:10]})
		fr.WriteContinuation(3, true, block[10:])
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/g", "te", "trailers"), EndHeaders: true})
		fr.WriteData(1, false, []byte("msg"))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc("grpc-status", "0"), EndStream: true, EndHeaders: true})
		fr.WritePing(false, [8]byte{1})
		fr.WriteWindowUpdate(0, 100)
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(":method", "CONNECT", ":authority", "h:443"), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: enc(":method", "GET", ":path", "/", ":scheme", "http", "Upper", "x"), EndStream: true, EndHeaders: true})
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
	}))
	f.Fuzz(func(t *testing.T, client []byte) {
		h := &fuzzHandler{t: t}
		in := append([]byte(Preface), client...)
		nc := &fuzzConn{r: bytes.NewReader(in)}
		cfg := &Config{MaxConcurrentStreams: 10, MaxHeaderBytes: 4096, Window: 65535, BufferLimit: 1024}
		Serve(context.Background(), nc, bufio.NewReader(nc), cfg, h, &Pools{})
		done := make(chan struct{})
		go func() { h.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a stream's handler never ended after the connection closed")
		}
	})
}
