// Package h2server serves mast-proxy's downstream HTTP/2 connections with
// its own frame handling (x/net's Framer and HPACK as building blocks): one
// reader goroutine per connection, a goroutine per request only once the
// request is ready to forward (an idle one reused), request bodies
// delivered as DATA arrives, and writes of all streams batched through one
// buffered writer.
//
// A request whose body has a known length up to Config.BufferLimit is
// gathered on the reader before it is handed over (it can then be retried
// and no goroutine waits for it); larger ones are handed over once that
// much arrived, and bodies of unknown length (gRPC, streamed uploads) at
// once.
package h2server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/h2frame"
	"github.com/mast-mesh/mast/internal/proxy/headerblock"
	"github.com/mast-mesh/mast/internal/proxy/idlepoll"
)

// Preface is the client connection preface (RFC 9113 section 3.4).
const Preface = http2.ClientPreface

// minWindow is HTTP/2's initial window: a smaller receive window would
// stall every stream.
const minWindow = 65535

// maxWindow is the largest flow-control window (RFC 9113 section 6.9.1).
const maxWindow = 1<<31 - 1

// Config is one connection's limits (the HTTP connection manager's).
type Config struct {
	// MaxConcurrentStreams is advertised and enforced (REFUSED_STREAM).
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a request's header list (HPACK size); a
	// longer one is answered 431.
	MaxHeaderBytes int
	// Window is the receive window of the connection and of each stream
	// (per_connection_buffer_limit_bytes), at least 65,535.
	Window int
	// BufferLimit: a body of known length up to this is gathered before
	// the request is served; a longer one once this much arrived.
	BufferLimit int
	// IdleTimeout closes a connection without streams for this long.
	IdleTimeout time.Duration
	// MaxConnectionDuration sends GOAWAY after this long (0: never).
	MaxConnectionDuration time.Duration
	// DrainTimeout closes a connection this long after its GOAWAY.
	DrainTimeout time.Duration
	// WriteTimeout bounds a socket write: a client that stops reading
	// while the proxy has frames for it loses the connection after this
	// long (0: 5 minutes). The deadline is renewed at most every half of
	// it, so a write may be cut between WriteTimeout/2 and WriteTimeout
	// after it began.
	WriteTimeout time.Duration
	// Drain sends GOAWAY when it ends (the proxy drains).
	Drain context.Context
	// OnFlood is told why a flooding connection was cut.
	OnFlood func(reason string)
	// Idle, when set, parks the connection after ParkIdle without
	// streams, with nothing to write and nothing read buffered: Serve then
	// returns, and the poller resumes the connection on a new goroutine
	// when it becomes readable or must go away. Done runs once the
	// connection is over and closed (before Serve returns, without Idle).
	Idle     *idlepoll.Poller
	ParkIdle time.Duration
	Done     func()
}

// Handler serves the connection's requests.
type Handler interface {
	// Start runs on the connection's reader when a request's headers
	// arrived (set s.User, start timers); it must not block.
	Start(s *Stream)
	// Serve runs on a goroutine of its own (a reused worker) once the
	// request is ready to forward; the stream is recycled after it
	// returns.
	Serve(s *Stream)
	// Cancel says the client reset the stream or the connection ended;
	// served says whether Serve was called (if not, it never will be and
	// the stream is recycled after Cancel). It must not block.
	Cancel(s *Stream, served bool)
}

// Pools are the buffers, streams and serving goroutines connections
// share.
type Pools struct {
	streams sync.Pool // *Stream
	writers sync.Pool // *bufio.Writer
	readers sync.Pool // *bufio.Reader of resumed connections
	// Goroutines that served a request wait on work for the next one, so
	// a request costs no new goroutine and no stack growth: up to
	// maxIdleWorkers of them for good, more (after a burst of requests at
	// once) for SpareIdle each.
	once sync.Once
	work chan job
	idle atomic.Int32
	// SpareIdle is how long a worker beyond maxIdleWorkers waits for the
	// next request before it exits (0: 10 seconds). Without that wait, every
	// burst of more concurrent requests than maxIdleWorkers started its
	// extra goroutines anew, each growing its stack again: at 1,000
	// requests/s over 16 connections a third of the requests did.
	SpareIdle time.Duration
}

// maxIdleWorkers bounds the goroutines kept waiting for a request for good.
const maxIdleWorkers = 8

// defaultSpareIdle is Pools.SpareIdle's default.
const defaultSpareIdle = 10 * time.Second

type job struct {
	c *conn
	s *Stream
}

// run serves s on an idle worker, or on a new one.
func (p *Pools) run(c *conn, s *Stream) {
	p.once.Do(func() { p.work = make(chan job) })
	select {
	case p.work <- job{c, s}:
	default:
		go p.worker(job{c, s})
	}
}

func (p *Pools) worker(j job) {
	var spare *time.Timer // a spare worker's wait, made once
	for {
		j.c.serve(j.s)
		if p.idle.Add(1) <= maxIdleWorkers {
			j = <-p.work
			p.idle.Add(-1)
			continue
		}
		d := p.SpareIdle
		if d <= 0 {
			d = defaultSpareIdle
		}
		if spare == nil {
			spare = time.NewTimer(d)
		} else {
			spare.Reset(d)
		}
		select {
		case j = <-p.work:
			spare.Stop()
			p.idle.Add(-1)
		case <-spare.C:
			p.idle.Add(-1)
			return
		}
	}
}

// Errors a stream's reads and writes report.
var (
	// ErrReset: the client reset the stream.
	ErrReset = errors.New("http2: stream reset by the client")
	// ErrClosed: the connection ended.
	ErrClosed = errors.New("http2: connection closed")
	// ErrTimeout: the stream's timers cut it (Stream.Expire).
	ErrTimeout = errors.New("http2: stream timed out")
	// ErrBodyStopped: the request body's reader stopped it (StopBody).
	ErrBodyStopped = errors.New("http2: request body no longer read")
)

type conn struct {
	nc    net.Conn
	br    *bufio.Reader
	cfg   *Config
	h     Handler
	pools *Pools
	fr    *http2.Framer     // reads, on the reader only
	rd    h2frame.Reader    // reads through fr
	hb    headerblock.Block // the header block being read
	fl    flood

	// Writes: whoever holds wmu writes frames into bw; the last writer of
	// a batch flushes (waiting counts writers queued for wmu).
	wmu       sync.Mutex
	waiting   atomic.Int32
	needFlush bool
	bw        *bufio.Writer // nil while nothing is buffered
	dw        deadlineWriter
	wdl       time.Time // the socket's write deadline
	wfr       *http2.Framer
	fw        frameWriter
	enc       *headerblock.Encoder // its Buf holds the block being written
	werr      error
	tableSize atomic.Int64 // the peer's HEADER_TABLE_SIZE not yet applied, -1 for none
	maxFrame  atomic.Uint32

	// Control frames the reader (and body readers) queue without waiting
	// for wmu; the holder of wmu copies them out.
	cmu      sync.Mutex
	cbuf     bytes.Buffer
	cfr      *http2.Framer
	cpending atomic.Bool
	cqueued  atomic.Int32 // frames in cbuf (changed under cmu)
	// sent counts the HEADERS and DATA frames written to the client: each
	// may draw a PING (flood.ping).
	sent atomic.Uint64

	// Stream state, under mu.
	mu          sync.Mutex
	streams     map[uint32]*Stream
	maxID       uint32 // highest stream the client opened
	active      int
	sendWindow  int64 // the connection's send window
	initialSend int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	recvWindow  int64 // what the client may still send on the connection
	recvCredit  int64 // consumed, not yet returned with WINDOW_UPDATE
	unacked     int   // our SETTINGS not yet acknowledged
	goingAway   bool
	closed      bool
	idleTimer   *time.Timer
	drainTimer  *time.Timer
	// ctxDone: the connection's context ended (its read deadline is
	// past); under mu, like closed, so that the reader's own deadlines
	// never undo either.
	ctxDone bool

	// Parking (Config.Idle): stops end the connection's callbacks.
	park     idlepoll.Conn
	parkable bool
	stops    []func() bool
	first    bool // no frame read yet
	// resumed: the connection was just resumed, most likely readable;
	// the reader reads before it may park again (a deadline already past
	// would not even try the socket).
	resumed bool
	// peeking: the reader waits for a frame (waitFrame); parkDeadline:
	// its read deadline is set for parking. Both under mu.
	peeking, parkDeadline bool
}

// brReader reads from the connection's current read buffer (a parked
// connection gives it back).
type brReader struct{ c *conn }

func (r brReader) Read(p []byte) (int, error) { return r.c.br.Read(p) }

// newReadFramer returns the reader's framer.
func (c *conn) newReadFramer() {
	c.fr = http2.NewFramer(nil, brReader{c})
	c.fr.SetMaxReadFrameSize(16384)
	c.fr.SetReuseFrames()
	c.rd.Reset(c.fr, brReader{c})
}

// frameWriter sends the Framer's writes to the connection's current
// buffered writer.
type frameWriter struct{ c *conn }

func (w frameWriter) Write(p []byte) (int, error) { return w.c.buf().Write(p) }

// defaultWriteTimeout is Config.WriteTimeout's default.
const defaultWriteTimeout = 5 * time.Minute

// deadlineWriter writes to the socket under a write deadline; wmu is
// held. The deadline moves only when less than half of the timeout is
// left, so a busy connection sets it about twice per timeout, not per
// write.
type deadlineWriter struct{ c *conn }

func (w deadlineWriter) Write(p []byte) (int, error) {
	c := w.c
	d := c.cfg.WriteTimeout
	if d <= 0 {
		d = defaultWriteTimeout
	}
	if now := time.Now(); c.wdl.Sub(now) < d/2 {
		c.wdl = now.Add(d)
		c.nc.SetWriteDeadline(c.wdl)
	}
	n, err := c.nc.Write(p)
	if err != nil {
		// A connection whose writes fail (the client stopped reading
		// past the deadline, or went away) is over: the reader ends
		// with it and every stream is told.
		c.nc.Close()
	}
	return n, err
}

// Serve serves an HTTP/2 connection whose client preface is the next
// thing in br, until it closes or ctx ends, or is parked (Config.Idle); it
// closes nc.
func Serve(ctx context.Context, nc net.Conn, br *bufio.Reader, cfg *Config, h Handler, pools *Pools) {
	c := &conn{nc: nc, br: br, cfg: cfg, h: h, pools: pools, streams: make(map[uint32]*Stream),
		sendWindow: minWindow, initialSend: minWindow, recvWindow: minWindow, first: true}
	c.fw = frameWriter{c}
	c.dw = deadlineWriter{c}
	c.wfr = http2.NewFramer(c.fw, nil)
	c.cfr = http2.NewFramer(&c.cbuf, nil)
	c.enc = headerblock.NewEncoder()
	c.tableSize.Store(-1)
	c.maxFrame.Store(16384)
	c.newReadFramer()
	c.hb.Init(cfg.MaxHeaderBytes)
	if _, err := br.Discard(len(Preface)); err != nil {
		c.end()
		return
	}
	window := max(cfg.Window, minWindow)
	settings := []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: cfg.MaxConcurrentStreams},
		{ID: http2.SettingInitialWindowSize, Val: uint32(window)},
		{ID: http2.SettingMaxHeaderListSize, Val: uint32(max(cfg.MaxHeaderBytes, 1))}}
	c.lockWrite()
	c.wfr.WriteSettings(settings...)
	if window > minWindow {
		c.wfr.WriteWindowUpdate(0, uint32(window-minWindow))
	}
	c.unlockWrite(true)
	c.unacked = 1
	c.recvWindow = int64(window)
	if cfg.Drain != nil {
		c.stops = append(c.stops, context.AfterFunc(cfg.Drain, c.goAway))
	}
	if cfg.MaxConnectionDuration > 0 {
		c.stops = append(c.stops, time.AfterFunc(cfg.MaxConnectionDuration, c.goAway).Stop)
	}
	c.stops = append(c.stops, context.AfterFunc(ctx, c.ctxEnded))
	c.parkable = cfg.Idle != nil && c.park.Init(nc, c.resume)
	c.mu.Lock()
	c.armIdle()
	c.mu.Unlock()
	c.run()
}

// ctxEnded cuts the connection's reads: its context ended.
func (c *conn) ctxEnded() {
	c.mu.Lock()
	c.ctxDone = true
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.mu.Unlock()
	c.wake()
}

// wake resumes a parked connection.
func (c *conn) wake() {
	if c.parkable {
		c.cfg.Idle.Wake(&c.park)
	}
}

// run reads until the connection ends, or is parked.
func (c *conn) run() {
	err := c.readLoop()
	if err == errParked {
		return
	}
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		c.fatal(http2.ErrCode(ce), "")
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.fatal(http2.ErrCodeFrameSize, "")
	case errors.Is(err, errFlood):
	}
	c.shutdown()
	c.end()
}

// end stops the connection's callbacks once it is over.
func (c *conn) end() {
	for _, stop := range c.stops {
		stop()
	}
	c.nc.Close()
	if c.cfg.Done != nil {
		c.cfg.Done()
	}
}

// resume serves a parked connection again.
func (c *conn) resume() {
	br, _ := c.pools.readers.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(c.nc, 4096)
	} else {
		br.Reset(c.nc)
	}
	c.br = br
	c.newReadFramer()
	c.resumed = true
	c.run()
}

// errParked: the reader parked the connection (another goroutine owns it
// now).
var errParked = errors.New("http2: connection parked")

// waitFrame waits for the next frame's first byte, with nothing
// buffered. On a connection without streams, with nothing to write and no
// header block open, that wait ends after ParkIdle and the connection is
// parked (errParked). A stream ending while the reader waits (endStream)
// starts that wait. The deadline applies to this Peek only, never to a
// frame half read.
func (c *conn) waitFrame() error {
	for {
		c.mu.Lock()
		c.peeking = true
		if c.parkable && !c.resumed && c.quiet() {
			c.armPark()
		}
		c.mu.Unlock()
		_, err := c.br.Peek(1)
		c.mu.Lock()
		c.peeking = false
		ours := c.parkDeadline && !c.closed && !c.ctxDone
		if ours {
			c.nc.SetReadDeadline(time.Time{})
		}
		c.parkDeadline = false
		if err == nil || !ours || !errors.Is(err, os.ErrDeadlineExceeded) {
			c.mu.Unlock()
			return err
		}
		// A TLS connection's reader returns the timeout only once no
		// complete record is left in its buffer either.
		if c.br.Buffered() == 0 && c.quiet() && c.parkNow() {
			c.mu.Unlock()
			return errParked
		}
		c.mu.Unlock()
	}
}

// quiet reports whether the connection has no streams and is not going
// away; c.mu is held.
func (c *conn) quiet() bool {
	return c.active == 0 && !c.goingAway && !c.closed && !c.ctxDone && !c.hb.Open()
}

// armPark sets the read deadline that ends the reader's wait after
// ParkIdle; c.mu is held.
func (c *conn) armPark() {
	c.parkDeadline = true
	c.nc.SetReadDeadline(time.Now().Add(c.cfg.ParkIdle))
}

// parkNow parks the quiet connection unless something is being written
// (then the reader waits once more); c.mu is held.
func (c *conn) parkNow() bool {
	if c.cpending.Load() || !c.wmu.TryLock() {
		return false
	}
	writing := c.bw != nil
	c.wmu.Unlock()
	if writing {
		return false
	}
	br := c.br
	c.br, c.fr = nil, nil
	c.hb.Release()
	c.rd.Release()
	if !c.cfg.Idle.Park(&c.park) {
		c.br = br
		c.newReadFramer()
		c.parkable = false
		return false
	}
	br.Reset(nil)
	c.pools.readers.Put(br)
	// Whatever ends the connection from now on (idle timeout, GOAWAY on
	// draining, the context) takes c.mu, held here, and then wakes it
	// (finish, ctxEnded).
	return true
}

var errFlood = errors.New("http2: flood")

// readLoop reads and handles frames until the connection fails, or is
// parked (errParked).
func (c *conn) readLoop() error {
	for {
		if c.cqueued.Load() >= maxQueuedControl {
			// Write them now; if a writer holds the connection (blocked on
			// a client that does not read), they wait with the next ones.
			c.kick()
			if c.cqueued.Load() > maxQueuedControl {
				return c.cut("control frame flood: too many PING ACKs, SETTINGS ACKs and resets queued for a client that does not read")
			}
		}
		if c.br.Buffered() == 0 {
			c.kick() // what the frames read so far asked for goes out in one write
			if c.parkable && !c.first {
				if err := c.waitFrame(); err != nil {
					return err
				}
			}
		}
		f, err := c.rd.Read()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if c.first {
					return http2.ConnectionError(http2.ErrCodeProtocol)
				}
				c.resetStream(se.StreamID, se.Code)
				continue
			}
			return err
		}
		c.resumed = false
		if c.first {
			if _, ok := f.Other.(*http2.SettingsFrame); !ok {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			c.first = false
		}
		if err := c.frame(f); err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.resetStream(se.StreamID, se.Code)
				continue
			}
			return err
		}
	}
}

// armIdle starts the idle timeout; c.mu is held.
func (c *conn) armIdle() {
	if c.cfg.IdleTimeout <= 0 || c.closed {
		return
	}
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(c.cfg.IdleTimeout, c.idle)
		return
	}
	c.idleTimer.Reset(c.cfg.IdleTimeout)
}

func (c *conn) idle() {
	c.mu.Lock()
	if c.active == 0 && !c.closed {
		c.goingAway = true
		c.queueGoAway(http2.ErrCodeNo)
		c.finish()
	}
	c.mu.Unlock()
	c.kick()
}

// goAway starts a graceful shutdown: GOAWAY naming the last stream, no
// new streams, the connection closes once its streams are done or the
// drain timeout passes.
func (c *conn) goAway() {
	c.mu.Lock()
	if c.goingAway || c.closed {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	c.queueGoAway(http2.ErrCodeNo)
	if c.active == 0 {
		c.finish()
	} else if c.cfg.DrainTimeout > 0 {
		c.drainTimer = time.AfterFunc(c.cfg.DrainTimeout+time.Second, func() { c.nc.Close() })
	}
	c.mu.Unlock()
	c.kick()
}

// finish ends a connection that went away once its GOAWAY is out: the
// reader gets a second to see the client close; c.mu is held.
func (c *conn) finish() {
	if c.closed {
		return
	}
	c.closed = true
	go func() {
		c.lockWrite()
		c.unlockWrite(true)
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		c.nc.SetReadDeadline(time.Now().Add(time.Second))
		c.wake() // a parked reader must see the end
	}()
}

// fatal sends GOAWAY with code for a connection error.
func (c *conn) fatal(code http2.ErrCode, debug string) {
	c.mu.Lock()
	c.cmu.Lock()
	c.cfr.WriteGoAway(c.maxID, code, []byte(debug))
	c.queuedCtrl()
	c.cmu.Unlock()
	c.mu.Unlock()
	c.lockWrite()
	c.wdl = time.Now().Add(time.Second)
	c.nc.SetWriteDeadline(c.wdl)
	c.unlockWrite(true)
}

// shutdown ends every stream once the reader is done.
func (c *conn) shutdown() {
	c.mu.Lock()
	c.closed = true
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	if c.drainTimer != nil {
		c.drainTimer.Stop()
	}
	var ended []*Stream
	for _, s := range c.streams {
		ended = append(ended, s)
		c.endStream(s, ErrClosed)
		s.canceling = true
	}
	c.mu.Unlock()
	c.nc.Close()
	for _, s := range ended {
		c.cancel(s)
	}
}
