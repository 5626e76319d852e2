// Package h2client is mast-proxy's HTTP/2 client connection toward
// upstream hosts: requests go out and responses come back as frames, read
// and written with x/net's http2.Framer and hpack, without net/http's
// Request and Response objects. It forwards requests as they came (it adds
// no header of its own), streams bodies both ways, honours the peer's
// SETTINGS, flow-control windows and stream limit, and tells the caller
// which failures left a request unprocessed (GOAWAY above the last stream
// id), so that it can be sent again. Connection pooling is the caller's.
package h2client

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/h2frame"
	"github.com/mast-mesh/mast/internal/proxy/headerblock"
)

// Config is a connection's configuration.
type Config struct {
	// MaxConcurrentStreams caps the streams open at once on the connection
	// (Envoy's http2_protocol_options.max_concurrent_streams); the peer's
	// SETTINGS_MAX_CONCURRENT_STREAMS caps it too. 0: the peer's only.
	MaxConcurrentStreams uint32
	// MaxRequests is how many streams the connection carries before it
	// stops taking new ones (max_requests_per_connection); 0: no limit.
	MaxRequests uint32
	// StreamWindow is the receive window given to the peer per stream: the
	// most a stream buffers before its reader consumes it. Default 1 MiB.
	StreamWindow int32
	// ConnWindow is the connection's receive window. Default 4 MiB. It is
	// returned as data arrives (streams' windows bound what they buffer).
	ConnWindow int32
	// MaxHeaderListSize bounds a response's header block. Default 96 KiB.
	MaxHeaderListSize uint32
	// PingInterval, when set, sends a PING at this period (Envoy's
	// connection_keepalive.interval); PingTimeout is how long its ACK may
	// take before the connection is closed (connection_keepalive.timeout).
	// With no interval, a PING is sent after ReadIdle without a frame read.
	PingInterval, PingTimeout time.Duration
	// ReadIdle is the read silence after which a health PING is sent when
	// no PingInterval is set. Default 30 s (PingTimeout default 10 s);
	// negative: no PING at all (a gRPC client's default: servers count
	// PINGs they did not allow as abuse).
	ReadIdle time.Duration
	// IdleTimeout closes the connection after this long without a stream
	// (the cluster's idle_timeout); 0: never.
	IdleTimeout time.Duration
	// MaxAge drains the connection once it is this old (the cluster's
	// max_connection_duration, as Envoy's pool does): it takes no new
	// stream and closes when its open streams have ended; 0: never.
	MaxAge time.Duration
	// Scheme is the :scheme sent ("http" or "https").
	Scheme string
	// OnStreamDone is called (from any goroutine, no lock held) each time a
	// stream releases its slot; OnClose once when the connection closed.
	OnStreamDone func()
	OnClose      func(*Conn)
}

const (
	defaultStreamWindow = 1 << 20
	defaultConnWindow   = 4 << 20
	defaultHeaderList   = 96 << 10
	// initialPeerStreams is assumed for the peer's stream limit until its
	// SETTINGS arrive (as x/net's transport does).
	initialPeerStreams = 100
	maxStreamID        = 1<<31 - 1
)

// Errors a request can end with.
var (
	// ErrUnprocessed: the server did not process the stream (a GOAWAY with
	// a lower last-stream-id, or the connection was unusable before the
	// stream was sent); sending it again elsewhere is safe.
	ErrUnprocessed = errors.New("h2client: stream not processed by the server")
	// ErrClosed: the connection closed while the stream was open.
	ErrClosed = errors.New("h2client: connection closed")
	// ErrDeadline: the request's deadline passed. It wraps
	// os.ErrDeadlineExceeded's meaning for callers that check timeouts.
	ErrDeadline = errors.New("h2client: deadline exceeded")
	// ErrKeepaliveTimeout: a keepalive PING was not answered in time.
	ErrKeepaliveTimeout = errors.New("h2client: keepalive PING not answered in time")
)

// StreamError is a RST_STREAM received from the peer.
type StreamError struct{ Code http2.ErrCode }

func (e *StreamError) Error() string { return "h2client: stream reset by peer: " + e.Code.String() }

// ProtocolError is an upstream that broke HTTP/2 or HTTP semantics.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "h2client: protocol error: " + e.Msg }

func protoErr(format string, a ...any) error { return &ProtocolError{Msg: fmt.Sprintf(format, a...)} }

// Conn is one HTTP/2 client connection.
type Conn struct {
	nc  net.Conn
	cfg Config

	// wmu serializes frame writes, header encoding and stream id
	// allocation (ids must go out in increasing order). Lock order: wmu
	// before mu; never wmu while holding mu.
	wmu  sync.Mutex
	bw   *bufio.Writer
	fr   *http2.Framer
	rd   h2frame.Reader       // reads through fr (reader only)
	henc *headerblock.Encoder // its Buf holds the block being written
	hb   headerblock.Block    // the response header block being read (reader only)

	mu           sync.Mutex
	streams      map[uint32]*Stream
	free         []*Stream // finished Streams for reuse (newStream)
	nextID       uint32
	reserved     uint32 // slots taken (Reserve) and not yet released
	total        uint32 // streams ever started (MaxRequests)
	peerStreams  uint32 // peer's SETTINGS_MAX_CONCURRENT_STREAMS
	peerWindow   int32  // peer's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame    uint32 // peer's SETTINGS_MAX_FRAME_SIZE
	peerHdrList  uint32 // peer's SETTINGS_MAX_HEADER_LIST_SIZE (0: none)
	sendWindow   int64  // connection send window
	recvUnsent   int32  // connection window consumed, not yet returned
	recvAvail    int32  // connection window the peer may still use
	goAway       bool   // GOAWAY received: no new streams
	lastStreamID uint32 // the GOAWAY's last-stream-id
	draining     bool   // Drain: close when the last stream ends
	closed       bool
	closeErr     error
	idleSince    time.Time

	// keepalive
	lastRead    atomic.Int64 // unix nanos of the last frame read
	pingOut     bool         // a keepalive PING awaits its ACK (mu)
	kaTimer     *time.Timer
	pingTimer   *time.Timer
	idleTimer   *time.Timer // nil without IdleTimeout
	ageTimer    *time.Timer // nil without MaxAge
	readerDone  chan struct{}
	closeOnce   sync.Once
	streamDoneF func()
}

// New starts an HTTP/2 connection over nc (prior knowledge, or after TLS
// negotiated h2): it writes the preface and SETTINGS and starts reading.
func New(nc net.Conn, cfg Config) (*Conn, error) {
	if cfg.StreamWindow <= 0 {
		cfg.StreamWindow = defaultStreamWindow
	}
	if cfg.StreamWindow < 65535 {
		cfg.StreamWindow = 65535
	}
	if cfg.ConnWindow < cfg.StreamWindow {
		cfg.ConnWindow = max(cfg.StreamWindow, defaultConnWindow)
	}
	if cfg.MaxHeaderListSize == 0 {
		cfg.MaxHeaderListSize = defaultHeaderList
	}
	if cfg.ReadIdle == 0 {
		cfg.ReadIdle = 30 * time.Second
	}
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = 10 * time.Second
	}
	if cfg.Scheme == "" {
		cfg.Scheme = "http"
	}
	c := &Conn{nc: nc, cfg: cfg, streams: map[uint32]*Stream{}, nextID: 1, peerStreams: initialPeerStreams,
		peerWindow: 65535, peerFrame: 16384, sendWindow: 65535, recvAvail: cfg.ConnWindow, readerDone: make(chan struct{}), idleSince: time.Now()}
	c.streamDoneF = cfg.OnStreamDone
	c.bw = bufio.NewWriterSize(nc, 16<<10)
	br := bufio.NewReaderSize(nc, 16<<10)
	c.fr = http2.NewFramer(c.bw, br)
	c.hb.Init(int(cfg.MaxHeaderListSize))
	c.fr.SetReuseFrames()
	c.rd.Reset(c.fr, br)
	c.henc = headerblock.NewEncoder()
	c.lastRead.Store(time.Now().UnixNano())

	c.wmu.Lock()
	_, err := c.bw.WriteString(http2.ClientPreface)
	if err == nil {
		err = c.fr.WriteSettings(
			http2.Setting{ID: http2.SettingEnablePush, Val: 0},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(cfg.StreamWindow)},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: cfg.MaxHeaderListSize},
		)
	}
	if err == nil && cfg.ConnWindow > 65535 {
		err = c.fr.WriteWindowUpdate(0, uint32(cfg.ConnWindow-65535))
	}
	if err == nil {
		err = c.bw.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.pingTimer = time.AfterFunc(time.Hour, c.pingExpired)
	c.pingTimer.Stop()
	if cfg.IdleTimeout > 0 {
		c.idleTimer = time.AfterFunc(cfg.IdleTimeout, c.idleExpired)
	}
	if cfg.MaxAge > 0 {
		c.ageTimer = time.AfterFunc(cfg.MaxAge, c.Drain)
	}
	switch {
	case cfg.PingInterval > 0:
		c.kaTimer = time.AfterFunc(cfg.PingInterval, c.keepalive)
	case cfg.ReadIdle > 0:
		c.kaTimer = time.AfterFunc(cfg.ReadIdle, c.keepalive)
	}
	go c.readLoop()
	return c, nil
}

// Reserve takes a stream slot if the connection can open another stream
// now; a successful Reserve must be followed by RoundTrip or Release.
func (c *Conn) Reserve() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.usableLocked() {
		return false
	}
	limit := c.peerStreams
	if m := c.cfg.MaxConcurrentStreams; m > 0 && m < limit {
		limit = m
	}
	if c.reserved >= limit {
		return false
	}
	if c.reserved == 0 && c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.reserved++
	c.total++
	return true
}

func (c *Conn) usableLocked() bool {
	return !c.closed && !c.goAway && !c.draining && c.nextID < maxStreamID-2 &&
		(c.cfg.MaxRequests == 0 || c.total < c.cfg.MaxRequests)
}

// Usable reports whether the connection may still take new streams (when
// not at its stream limit).
func (c *Conn) Usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usableLocked()
}

// Release gives back a slot taken by Reserve that was not used.
func (c *Conn) Release() { c.release(nil, false) }

// release gives back a stream slot, and s (the exchange's reference to it,
// reusable when none of its callbacks can still run) when there is one.
func (c *Conn) release(s *Stream, reusable bool) {
	c.mu.Lock()
	if s != nil {
		if c.streams[s.id] == s {
			delete(c.streams, s.id)
		}
		s.reusable = reusable
		s.unref()
	}
	c.reserved--
	idle := c.reserved == 0
	if idle {
		c.idleSince = time.Now()
		if c.idleTimer != nil {
			c.idleTimer.Reset(c.cfg.IdleTimeout)
		}
	}
	closeNow := idle && (c.draining || c.goAway || (c.cfg.MaxRequests > 0 && c.total >= c.cfg.MaxRequests)) && !c.closed
	c.mu.Unlock()
	if closeNow {
		c.shutdown(ErrClosed)
	}
	if f := c.streamDoneF; f != nil {
		f()
	}
}

// Idle reports whether no stream is open and since when.
func (c *Conn) Idle() (bool, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reserved == 0, c.idleSince
}

// Drain stops the connection from taking new streams and closes it once
// its open streams have ended (at once when there are none).
func (c *Conn) Drain() {
	c.mu.Lock()
	c.draining = true
	idle := c.reserved == 0 && !c.closed
	c.mu.Unlock()
	if idle {
		c.shutdown(ErrClosed)
	}
}

// Close closes the connection at once; open streams fail with ErrClosed.
func (c *Conn) Close() error {
	c.closeWith(ErrClosed)
	return nil
}

// Closed reports whether the connection has closed.
func (c *Conn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// shutdown sends GOAWAY(NO_ERROR) and closes.
func (c *Conn) shutdown(err error) {
	c.wmu.Lock()
	c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	c.bw.Flush()
	c.wmu.Unlock()
	c.closeWith(err)
}

// fatal ends the connection for a connection error of ours: GOAWAY with
// the code, then close.
func (c *Conn) fatal(code http2.ErrCode, err error) {
	c.wmu.Lock()
	c.fr.WriteGoAway(0, code, nil)
	c.bw.Flush()
	c.wmu.Unlock()
	c.closeWith(err)
}

func (c *Conn) closeWith(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.closeErr = err
		c.free = nil
		streams := make([]*Stream, 0, len(c.streams))
		for _, s := range c.streams {
			s.failLocked(err, false)
			streams = append(streams, s)
		}
		c.mu.Unlock()
		c.nc.Close()
		if c.kaTimer != nil {
			c.kaTimer.Stop()
		}
		c.pingTimer.Stop()
		if c.idleTimer != nil {
			c.idleTimer.Stop()
		}
		if c.ageTimer != nil {
			c.ageTimer.Stop()
		}
		for _, s := range streams {
			s.wake()
		}
		if f := c.cfg.OnClose; f != nil {
			f(c)
		}
	})
}

// keepalive runs on the keepalive timer: with an interval, it sends a
// PING each period; else it sends one after ReadIdle without a frame.
func (c *Conn) keepalive() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	next := c.cfg.PingInterval
	send := !c.pingOut
	if next == 0 {
		idle := time.Since(time.Unix(0, c.lastRead.Load()))
		if idle < c.cfg.ReadIdle {
			send = false
			next = c.cfg.ReadIdle - idle
		} else {
			next = c.cfg.ReadIdle
		}
	}
	if send {
		c.pingOut = true
	}
	c.mu.Unlock()
	if send {
		c.pingTimer.Reset(c.cfg.PingTimeout)
		c.wmu.Lock()
		err := c.fr.WritePing(false, [8]byte{'m', 'a', 's', 't', 'k', 'a'})
		if err == nil {
			err = c.bw.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			c.closeWith(fmt.Errorf("%w: %v", ErrClosed, err))
			return
		}
	}
	c.kaTimer.Reset(next)
}

func (c *Conn) idleExpired() {
	c.mu.Lock()
	idle := c.reserved == 0 && !c.closed && time.Since(c.idleSince) >= c.cfg.IdleTimeout
	if idle {
		c.draining = true // no Reserve from now on
	}
	c.mu.Unlock()
	if idle {
		c.shutdown(ErrClosed)
	}
}

func (c *Conn) pingExpired() {
	c.mu.Lock()
	out := c.pingOut
	c.mu.Unlock()
	if out {
		c.closeWith(ErrKeepaliveTimeout)
	}
}

// write runs f with the writer locked and flushes.
func (c *Conn) write(f func() error) error {
	c.wmu.Lock()
	err := f()
	if err == nil {
		err = c.bw.Flush()
	}
	c.wmu.Unlock()
	return err
}

func (c *Conn) readLoop() {
	defer close(c.readerDone)
	err := c.readFrames()
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		c.fatal(http2.ErrCode(ce), protoErr("%v", err))
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		c.closeWith(ErrClosed)
	default:
		var pe *ProtocolError
		if errors.As(err, &pe) {
			c.fatal(http2.ErrCodeProtocol, err)
			return
		}
		c.closeWith(fmt.Errorf("%w: %v", ErrClosed, err))
	}
}

func (c *Conn) readFrames() error {
	gotSettings := false
	for {
		f, err := c.rd.Read()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				// A malformed header block on one stream.
				c.resetStream(se.StreamID, se.Code, protoErr("%v", se))
				continue
			}
			return err
		}
		c.lastRead.Store(time.Now().UnixNano())
		if !gotSettings {
			if _, ok := f.Other.(*http2.SettingsFrame); !ok {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			gotSettings = true
		}
		switch f.Type {
		case http2.FrameHeaders:
			c.hb.Start(f.StreamID, f.StreamEnded(), f.HasPriority(), f.Priority.StreamDep)
			var done bool
			if done, err = c.hb.Fragment(f.Fragment, f.HeadersEnded()); done {
				err = c.onHeaders(&c.hb)
			}
		case http2.FrameContinuation:
			var done bool
			if done, err = c.hb.Fragment(f.Fragment, f.HeadersEnded()); done {
				err = c.onHeaders(&c.hb)
			}
		case http2.FrameWindowUpdate:
			err = c.onWindowUpdate(f)
		case http2.FrameRSTStream:
			c.onReset(f)
		case http2.FramePing:
			err = c.onPing(f)
		}
		switch f := f.Other.(type) {
		case *http2.DataFrame:
			err = c.onData(f)
		case *http2.SettingsFrame:
			err = c.onSettings(f)
		case *http2.GoAwayFrame:
			c.onGoAway(f)
		case *http2.PushPromiseFrame:
			return http2.ConnectionError(http2.ErrCodeProtocol) // push is disabled
		}
		if err != nil {
			return err
		}
	}
}

func (c *Conn) onHeaders(f *headerblock.Block) error {
	id := f.ID
	c.mu.Lock()
	s := c.streams[id]
	if s == nil {
		next := c.nextID
		c.mu.Unlock()
		if id%2 == 0 || id >= next {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	var err error
	switch {
	case f.Invalid:
		err = protoErr("invalid response header field")
	case f.Truncated:
		err = protoErr("response header list larger than %d bytes", c.cfg.MaxHeaderListSize)
	default:
		err = s.onHeaders(f.Fields, f.EndStream)
	}
	c.mu.Unlock()
	if err != nil {
		c.resetStream(id, http2.ErrCodeProtocol, err)
		return nil
	}
	s.wake()
	return nil
}

func (c *Conn) onData(f *http2.DataFrame) error {
	n := int32(f.Length)
	c.mu.Lock()
	if n > c.recvAvail {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvAvail -= n
	c.recvUnsent += n
	var refund int32
	if c.recvUnsent >= c.cfg.ConnWindow/4 {
		refund, c.recvUnsent = c.recvUnsent, 0
		c.recvAvail += refund
	}
	id := f.StreamID
	s := c.streams[id]
	next := c.nextID
	var err error
	if s != nil {
		err = s.onData(f.Data(), n-int32(len(f.Data())), f.StreamEnded())
	}
	c.mu.Unlock()
	if refund > 0 {
		if err := c.write(func() error { return c.fr.WriteWindowUpdate(0, uint32(refund)) }); err != nil {
			return err
		}
	}
	if s == nil {
		if id >= next {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil // a stream we reset or finished
	}
	if err != nil {
		var code http2.ErrCode = http2.ErrCodeProtocol
		if errors.Is(err, errFlow) {
			code = http2.ErrCodeFlowControl
		}
		c.resetStream(id, code, err)
		return nil
	}
	s.wake()
	return nil
}

var errFlow = protoErr("peer exceeded the stream's flow-control window")

func (c *Conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var ferr error
	c.mu.Lock()
	f.ForeachSetting(func(st http2.Setting) error {
		switch st.ID {
		case http2.SettingMaxConcurrentStreams:
			c.peerStreams = st.Val
		case http2.SettingInitialWindowSize:
			if st.Val > math.MaxInt32 {
				ferr = http2.ConnectionError(http2.ErrCodeFlowControl)
				return nil
			}
			delta := int32(st.Val) - c.peerWindow
			c.peerWindow = int32(st.Val)
			for _, s := range c.streams {
				s.sendWindow += int64(delta)
			}
		case http2.SettingMaxFrameSize:
			c.peerFrame = st.Val
		case http2.SettingMaxHeaderListSize:
			c.peerHdrList = st.Val
		}
		return nil
	})
	streams := make([]*Stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	if ferr != nil {
		return ferr
	}
	if v, ok := f.Value(http2.SettingHeaderTableSize); ok {
		c.wmu.Lock()
		c.henc.SetMaxDynamicTableSizeLimit(v)
		c.wmu.Unlock()
	}
	for _, s := range streams {
		s.wake()
	}
	return c.write(func() error { return c.fr.WriteSettingsAck() })
}

func (c *Conn) onWindowUpdate(f *h2frame.Frame) error {
	c.mu.Lock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > math.MaxInt32 {
			c.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		streams := make([]*Stream, 0, len(c.streams))
		for _, s := range c.streams {
			if s.sending {
				streams = append(streams, s)
			}
		}
		c.mu.Unlock()
		for _, s := range streams {
			s.wake()
		}
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		c.mu.Unlock()
		return nil
	}
	s.sendWindow += int64(f.Increment)
	over := s.sendWindow > math.MaxInt32
	c.mu.Unlock()
	if over {
		c.resetStream(f.StreamID, http2.ErrCodeFlowControl, protoErr("peer overflowed the stream's send window"))
		return nil
	}
	s.wake()
	return nil
}

func (c *Conn) onReset(f *h2frame.Frame) {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	switch {
	case s == nil:
	case f.ErrCode == http2.ErrCodeNo:
		// The server answered whole and asks us to stop sending (RFC 9113
		// 8.1): the response stands.
		s.stopSendingLocked()
	default:
		s.failLocked(&StreamError{Code: f.ErrCode}, false)
	}
	c.mu.Unlock()
	if s != nil {
		s.wake()
	}
}

func (c *Conn) onPing(f *h2frame.Frame) error {
	if f.IsAck() {
		c.mu.Lock()
		c.pingOut = false
		c.mu.Unlock()
		return nil
	}
	data := f.Data
	return c.write(func() error { return c.fr.WritePing(true, data) })
}

func (c *Conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.goAway = true
	c.lastStreamID = f.LastStreamID
	var refused []*Stream
	for id, s := range c.streams {
		if id > f.LastStreamID {
			s.failLocked(ErrUnprocessed, false)
			refused = append(refused, s)
		}
	}
	idle := c.reserved == 0
	c.mu.Unlock()
	for _, s := range refused {
		s.wake()
	}
	if idle {
		c.closeWith(ErrClosed)
	}
}

// resetStream sends RST_STREAM(code) and fails the stream with err.
func (c *Conn) resetStream(id uint32, code http2.ErrCode, err error) {
	c.mu.Lock()
	s := c.streams[id]
	send := true
	if s != nil {
		s.failLocked(err, true)
		send = !s.resetSent && !c.closed
		s.resetSent = true
	}
	c.mu.Unlock()
	if s != nil {
		s.wake()
	}
	if send {
		c.write(func() error { return c.fr.WriteRSTStream(id, code) })
	}
}
