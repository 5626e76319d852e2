package h2client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// rawServer is an HTTP/2 server written with the bare Framer, so that a
// test sees exactly which frames the client sends and answers with exactly
// the frames it wants.
type rawServer struct {
	t  *testing.T
	ln net.Listener
	// settings are sent first on each connection.
	settings []http2.Setting
	// serve runs per connection after the preface and SETTINGS exchange.
	serve func(sc *serverConn)
	mu    sync.Mutex
	conns int
	wg    sync.WaitGroup
}

type serverConn struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	// clientSettings are the client's first SETTINGS.
	clientSettings map[http2.SettingID]uint32
}

func startRaw(t *testing.T, serve func(sc *serverConn), settings ...http2.Setting) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{t: t, ln: ln, serve: serve, settings: settings}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				s.handshake(nc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *rawServer) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *rawServer) handshake(nc net.Conn) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(nc, preface); err != nil || string(preface) != http2.ClientPreface {
		s.t.Errorf("preface %q, %v", preface, err)
		return
	}
	sc := &serverConn{t: s.t, nc: nc, fr: http2.NewFramer(nc, nc), clientSettings: map[http2.SettingID]uint32{}}
	sc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	sc.enc = hpack.NewEncoder(&sc.hbuf)
	f, err := sc.fr.ReadFrame()
	if err != nil {
		s.t.Errorf("client SETTINGS: %v", err)
		return
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		s.t.Errorf("first frame %v, want SETTINGS", f)
		return
	}
	sf.ForeachSetting(func(st http2.Setting) error { sc.clientSettings[st.ID] = st.Val; return nil })
	sc.fr.WriteSettings(s.settings...)
	sc.fr.WriteSettingsAck()
	s.serve(sc)
}

// next reads frames, skipping SETTINGS ACKs and connection WINDOW_UPDATEs.
func (sc *serverConn) next() (http2.Frame, error) {
	for {
		f, err := sc.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				continue
			}
		}
		return f, nil
	}
}

// headers reads until a HEADERS block and returns its fields.
func (sc *serverConn) headers() (*http2.MetaHeadersFrame, error) {
	for {
		f, err := sc.next()
		if err != nil {
			return nil, err
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			return h, nil
		}
	}
}

func (sc *serverConn) writeHeaders(id uint32, end bool, fields ...string) {
	sc.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		sc.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := sc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: sc.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		sc.t.Errorf("write headers: %v", err)
	}
}

func dial(t *testing.T, s *rawServer, cfg Config) *Conn {
	t.Helper()
	nc, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func roundTrip(t *testing.T, c *Conn, ctx context.Context, r *Request) (*Stream, error) {
	t.Helper()
	if !c.Reserve() {
		t.Fatal("no stream slot")
	}
	return c.RoundTrip(ctx, r)
}

func fieldList(fs []hpack.HeaderField) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Name + ": " + f.Value + "\n")
	}
	return b.String()
}

// TestRequestGoesOutAsItCame: the header block is the request's fields in
// order after the pseudo-headers, nothing added (no user-agent, no
// accept-encoding), connection-specific fields and host dropped; a GET
// body without content-length is sent; the response (a gzip body, not
// decompressed), its headers and trailers come back as sent.
func TestRequestGoesOutAsItCame(t *testing.T) {
	got := make(chan string, 1)
	gotBody := make(chan string, 1)
	s := startRaw(t, func(sc *serverConn) {
		h, err := sc.headers()
		if err != nil {
			t.Error(err)
			return
		}
		got <- fieldList(h.Fields)
		var body []byte
		for !h.StreamEnded() {
			f, err := sc.next()
			if err != nil {
				t.Error(err)
				return
			}
			if d, ok := f.(*http2.DataFrame); ok {
				body = append(body, d.Data()...)
				if d.StreamEnded() {
					break
				}
			}
		}
		gotBody <- string(body)
		sc.writeHeaders(h.StreamID, false, ":status", "200", "content-encoding", "gzip", "x-b", "2", "connection", "close")
		sc.fr.WriteData(h.StreamID, false, []byte("\x1f\x8braw"))
		sc.writeHeaders(h.StreamID, true, "grpc-status", "0", "grpc-message", "ok")
		sc.next() // until the client goes away
	})
	c := dial(t, s, Config{})
	st, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Authority: "svc:80", Path: "/p?q=1%2F",
		Header: headers.List{{Name: "host", Value: "svc:80"}, {Name: "x-a", Value: "1"}, {Name: "te", Value: "trailers"},
			{Name: "connection", Value: "keep-alive"}, {Name: "transfer-encoding", Value: "chunked"}, {Name: "x-a", Value: "2"}},
		BodyStream: strings.NewReader("get-body"), ContentLength: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := ":method: GET\n:scheme: http\n:authority: svc:80\n:path: /p?q=1%2F\nx-a: 1\nte: trailers\nx-a: 2\n"
	if h := <-got; h != want {
		t.Errorf("request header block:\n%s\nwant:\n%s", h, want)
	}
	if b := <-gotBody; b != "get-body" {
		t.Errorf("request body %q, want the GET's body", b)
	}
	body, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != 200 || string(body) != "\x1f\x8braw" || st.Header.Value("content-encoding") != "gzip" || st.Header.Has("connection") {
		t.Errorf("response %d %v %q", st.Status, st.Header, body)
	}
	if tr := st.Trailers(); tr.Value("grpc-status") != "0" || tr.Value("grpc-message") != "ok" {
		t.Errorf("trailers %v", tr)
	}
	st.Close()
}

// TestContentLengthRules: a buffered body announces its length; an empty
// POST announces 0; a GET without a body announces nothing and ends the
// stream on HEADERS.
func TestContentLengthRules(t *testing.T) {
	type seen struct {
		fields string
		ended  bool
	}
	got := make(chan seen, 3)
	s := startRaw(t, func(sc *serverConn) {
		for {
			h, err := sc.headers()
			if err != nil {
				return
			}
			got <- seen{fieldList(h.RegularFields()), h.StreamEnded()}
			sc.writeHeaders(h.StreamID, true, ":status", "204")
		}
	})
	c := dial(t, s, Config{})
	for _, tc := range []struct {
		r          Request
		want       string
		headerOnly bool
	}{
		{Request{Method: "PUT", Path: "/", Body: []byte("abc")}, "content-length: 3\n", false},
		{Request{Method: "POST", Path: "/", Body: []byte{}}, "content-length: 0\n", true},
		{Request{Method: "GET", Path: "/", ContentLength: -1}, "", true},
	} {
		st, err := roundTrip(t, c, context.Background(), &tc.r)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		g := <-got
		if g.fields != tc.want || g.ended != tc.headerOnly {
			t.Errorf("%s: fields %q ended on HEADERS %v, want %q %v", tc.r.Method, g.fields, g.ended, tc.want, tc.headerOnly)
		}
	}
}

// TestRefusedStreamAndGoAway: RST_STREAM(REFUSED_STREAM) is reported as a
// StreamError with that code; a GOAWAY whose last-stream-id is below a
// stream fails that stream with ErrUnprocessed while the stream below it
// completes, and the connection takes no new stream.
func TestRefusedStreamAndGoAway(t *testing.T) {
	s := startRaw(t, func(sc *serverConn) {
		h1, err := sc.headers()
		if err != nil {
			return
		}
		sc.fr.WriteRSTStream(h1.StreamID, http2.ErrCodeRefusedStream)
		h3, err := sc.headers()
		if err != nil {
			return
		}
		h5, err := sc.headers()
		if err != nil {
			return
		}
		sc.fr.WriteGoAway(h3.StreamID, http2.ErrCodeNo, nil)
		_ = h5
		sc.writeHeaders(h3.StreamID, true, ":status", "200")
		sc.next()
	})
	c := dial(t, s, Config{})
	_, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Path: "/1", ContentLength: -1})
	var se *StreamError
	if !errors.As(err, &se) || se.Code != http2.ErrCodeRefusedStream {
		t.Fatalf("refused stream: %v, want a REFUSED_STREAM StreamError", err)
	}
	type result struct {
		st  *Stream
		err error
	}
	r3, r5 := make(chan result, 1), make(chan result, 1)
	if !c.Reserve() || !c.Reserve() {
		t.Fatal("no slots")
	}
	go func() {
		st, err := c.RoundTrip(context.Background(), &Request{Method: "GET", Path: "/3", ContentLength: -1})
		r3 <- result{st, err}
	}()
	time.Sleep(50 * time.Millisecond) // stream 3 goes out before stream 5
	go func() {
		st, err := c.RoundTrip(context.Background(), &Request{Method: "GET", Path: "/5", ContentLength: -1})
		r5 <- result{st, err}
	}()
	if r := <-r5; !errors.Is(r.err, ErrUnprocessed) {
		t.Errorf("stream above GOAWAY's last-stream-id: %v, want ErrUnprocessed", r.err)
	}
	r := <-r3
	if r.err != nil || r.st.Status != 200 {
		t.Fatalf("stream at GOAWAY's last-stream-id: %v", r.err)
	}
	r.st.Close()
	if c.Reserve() {
		t.Error("a connection that got GOAWAY took a new stream")
	}
}

// TestCancelAndDeadlineResetStream: the caller's context ending and the
// request deadline passing each send RST_STREAM(CANCEL) and fail the
// exchange.
func TestCancelAndDeadlineResetStream(t *testing.T) {
	resets := make(chan http2.ErrCode, 2)
	s := startRaw(t, func(sc *serverConn) {
		for {
			f, err := sc.next()
			if err != nil {
				return
			}
			if rs, ok := f.(*http2.RSTStreamFrame); ok {
				resets <- rs.ErrCode
			}
		}
	})
	c := dial(t, s, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := roundTrip(t, c, ctx, &Request{Method: "GET", Path: "/", ContentLength: -1}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if code := <-resets; code != http2.ErrCodeCancel {
		t.Errorf("reset %v, want CANCEL", code)
	}
	_, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Path: "/", ContentLength: -1, Deadline: time.Now().Add(50 * time.Millisecond)})
	if !errors.Is(err, ErrDeadline) {
		t.Errorf("deadline: %v", err)
	}
	if code := <-resets; code != http2.ErrCodeCancel {
		t.Errorf("reset %v, want CANCEL", code)
	}
}

// TestFlowControlBothWays: the client sends no more than the peer's
// stream window until WINDOW_UPDATE; it advertises its StreamWindow and
// resets a stream whose peer overruns it.
func TestFlowControlBothWays(t *testing.T) {
	const win = 10
	type report struct {
		before  int // bytes received before the first WINDOW_UPDATE
		total   int
		initWin uint32
	}
	rep := make(chan report, 1)
	overrun := make(chan http2.ErrCode, 1)
	s := startRaw(t, func(sc *serverConn) {
		h, err := sc.headers()
		if err != nil {
			return
		}
		var r report
		r.initWin = sc.clientSettings[http2.SettingInitialWindowSize]
		for {
			// Wait to see whether more than the window arrives.
			sc.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			f, err := sc.next()
			if err != nil {
				break
			}
			d := f.(*http2.DataFrame)
			r.before += len(d.Data())
		}
		sc.nc.SetReadDeadline(time.Time{})
		r.total = r.before
		for r.total < 100 {
			sc.fr.WriteWindowUpdate(h.StreamID, 100)
			sc.fr.WriteWindowUpdate(0, 100)
			f, err := sc.next()
			if err != nil {
				t.Error(err)
				return
			}
			r.total += len(f.(*http2.DataFrame).Data())
		}
		rep <- r
		// Overrun the client's window: it must reset the stream.
		sc.writeHeaders(h.StreamID, false, ":status", "200")
		big := make([]byte, 16384)
		for sent := uint32(0); sent <= r.initWin; sent += uint32(len(big)) {
			sc.fr.WriteData(h.StreamID, false, big)
		}
		for {
			f, err := sc.next()
			if err != nil {
				t.Errorf("no RST_STREAM after the overrun: %v", err)
				overrun <- 0
				return
			}
			if rs, ok := f.(*http2.RSTStreamFrame); ok {
				overrun <- rs.ErrCode
				return
			}
		}
	}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: win})
	c := dial(t, s, Config{StreamWindow: 65535, ConnWindow: 1 << 20})
	time.Sleep(50 * time.Millisecond) // the server's SETTINGS first
	st, err := roundTrip(t, c, context.Background(), &Request{Method: "POST", Path: "/", Body: make([]byte, 100)})
	if err != nil {
		t.Fatal(err)
	}
	r := <-rep
	if r.before != win || r.total != 100 || r.initWin != 65535 {
		t.Errorf("sent %d bytes before WINDOW_UPDATE (window %d), %d in all; advertised window %d", r.before, win, r.total, r.initWin)
	}
	// The body is not read: the window stays closed and the server's
	// 80 KiB overrun it.
	if code := <-overrun; code != http2.ErrCodeFlowControl {
		t.Errorf("overrun reset with %v, want FLOW_CONTROL_ERROR", code)
	}
	if _, err := io.ReadAll(st); err == nil {
		t.Error("overrun stream read to EOF")
	}
	st.Close()
}

// TestStreamLimits: the peer's SETTINGS_MAX_CONCURRENT_STREAMS and the
// configured cap each bound Reserve; MaxRequests retires the connection.
func TestStreamLimits(t *testing.T) {
	s := startRaw(t, func(sc *serverConn) {
		for {
			if _, err := sc.next(); err != nil {
				return
			}
		}
	}, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 2})
	c := dial(t, s, Config{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := c.peerStreams
		c.mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !c.Reserve() || !c.Reserve() || c.Reserve() {
		t.Error("peer's limit of 2 streams not applied")
	}
	c.Release()
	if !c.Reserve() {
		t.Error("a released slot was not reusable")
	}
	c2 := dial(t, s, Config{MaxConcurrentStreams: 1})
	if !c2.Reserve() || c2.Reserve() {
		t.Error("configured cap of 1 stream not applied")
	}
	c3 := dial(t, s, Config{MaxRequests: 1})
	if !c3.Reserve() {
		t.Fatal("no first stream")
	}
	c3.Release()
	if c3.Reserve() {
		t.Error("max requests of 1: a second stream was taken")
	}
}

// TestKeepalivePing: with an interval, PINGs go out every interval; a
// peer that acknowledges keeps the connection; one that does not has it
// closed after the timeout, failing the stream in flight.
func TestKeepalivePing(t *testing.T) {
	for _, ack := range []bool{true, false} {
		pings := make(chan struct{}, 100)
		s := startRaw(t, func(sc *serverConn) {
			for {
				f, err := sc.next()
				if err != nil {
					return
				}
				if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
					pings <- struct{}{}
					if ack {
						sc.fr.WritePing(true, p.Data)
					}
				}
			}
		})
		c := dial(t, s, Config{PingInterval: 30 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
		if !c.Reserve() {
			t.Fatal("no slot")
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.RoundTrip(context.Background(), &Request{Method: "GET", Path: "/", ContentLength: -1})
			done <- err
		}()
		if ack {
			for i := 0; i < 4; i++ {
				<-pings
			}
			if c.Closed() {
				t.Error("a connection whose PINGs were answered was closed")
			}
			c.Close()
			<-done
			continue
		}
		<-pings
		if err := <-done; !errors.Is(err, ErrKeepaliveTimeout) {
			t.Errorf("unanswered PING: stream ended with %v, want ErrKeepaliveTimeout", err)
		}
		if !c.Closed() {
			t.Error("connection still open after an unanswered PING")
		}
	}
}

// TestMalformedResponses: responses that break HTTP/2 or HTTP fail the
// stream with a ProtocolError (and a PROTOCOL_ERROR reset).
func TestMalformedResponses(t *testing.T) {
	cases := []struct {
		name  string
		write func(sc *serverConn, id uint32)
	}{
		{"no status", func(sc *serverConn, id uint32) { sc.writeHeaders(id, true, "x", "y") }},
		{"request pseudo-header", func(sc *serverConn, id uint32) { sc.writeHeaders(id, true, ":status", "200", ":path", "/") }},
		{"bad status", func(sc *serverConn, id uint32) { sc.writeHeaders(id, true, ":status", "20x") }},
		{"DATA before HEADERS", func(sc *serverConn, id uint32) { sc.fr.WriteData(id, true, []byte("x")) }},
		{"body longer than content-length", func(sc *serverConn, id uint32) {
			sc.writeHeaders(id, false, ":status", "200", "content-length", "1")
			sc.fr.WriteData(id, true, []byte("xy"))
		}},
		{"body shorter than content-length", func(sc *serverConn, id uint32) {
			sc.writeHeaders(id, false, ":status", "200", "content-length", "3")
			sc.fr.WriteData(id, true, []byte("xy"))
		}},
		{"pseudo-header in trailers", func(sc *serverConn, id uint32) {
			sc.writeHeaders(id, false, ":status", "200")
			sc.writeHeaders(id, true, ":status", "200")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startRaw(t, func(sc *serverConn) {
				h, err := sc.headers()
				if err != nil {
					return
				}
				tc.write(sc, h.StreamID)
				for {
					if _, err := sc.next(); err != nil {
						return
					}
				}
			})
			c := dial(t, s, Config{})
			st, err := roundTrip(t, c, context.Background(), &Request{Method: "GET", Path: "/", ContentLength: -1})
			if err == nil {
				_, err = io.ReadAll(st)
				st.Close()
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Errorf("error %v, want a ProtocolError", err)
			}
		})
	}
}
