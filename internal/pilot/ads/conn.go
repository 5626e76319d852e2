package ads

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// conn is one ADS stream. Its loop goroutine owns the watches and is the only
// writer; writes happen under mu so that Status can read concurrently.
type conn struct {
	s           *Server
	id          string
	proxy       *model.Proxy
	kind        string // "sotw" or "delta"
	connectedAt time.Time

	wake chan struct{} // capacity 1: a push is pending

	mu           sync.Mutex
	watches      map[string]*watch
	ordered      []*watch // watches in push order, replaced (never modified) by addWatch
	pending      *model.PushRequest
	pendingSince time.Time
	sending      string // type URL of the response in flight, "" when idle
	// nonce and version of the response in flight
	sendingNonce, sendingVersion string

	slot     pushSlot // the push slot the loop holds or held last (loop only)
	inflight inflight // responses sent and not yet answered, guarded by mu
	// owes: the client has not answered everything pushed to it yet; the
	// connection counts in its server's fanout as owing. Guarded by mu.
	owes bool
}

// watch is the state of one resource type on one connection.
type watch struct {
	typeURL  string
	wildcard bool
	names    nameSet     // explicit subscriptions, sorted; shared (never modified)
	wire     []byte      // SotW: requestWire(names), shared as names is; nil when wildcard
	tables   *nameTables // shares names with other watches; nil: no sharing
	namesGen uint64      // counts changes of names (loop only)
	eds      edsState

	nonceSent, nonceAcked     string
	versionSent, versionAcked string
	nonceNacked               string // nonce of the last NACKed response
	lastNACK                  string
	lastNACKAt                time.Time
	lastError                 string // last generation error
	resources                 int
	bytesSent                 int64
	responses                 int64

	known knownVersions // delta: resource name -> version the client has

	// SotW: digest of the last complete response (digestOf), once one was
	// sent; a typed push whose response has the same digest is skipped.
	// Loop only.
	digest      uint64
	digestValid bool
}

func newWatch(typeURL string) *watch {
	return &watch{typeURL: typeURL}
}

// newWatch returns a watch of c whose subscriptions are shared with the
// server's other connections.
func (c *conn) newWatch(typeURL string) *watch {
	w := newWatch(typeURL)
	w.tables = c.s.names
	return w
}

// sortedNames returns the explicit subscriptions in order, in a new slice.
func (w *watch) sortedNames() []string { return w.names.strings() }

// setSotwNames applies a SotW subscription: names replace the previous set;
// for LDS and CDS an empty list or "*" means wildcard. It reports a change
// and allocates only when there is one (ACKs repeat the same list).
func (w *watch) setSotwNames(names []string) bool {
	wildcard := isWildcardType(w.typeURL) && (len(names) == 0 || slices.Contains(names, "*"))
	if wildcard == w.wildcard && w.names.sameAs(names) {
		return false
	}
	w.wildcard = wildcard
	if wildcard {
		w.names, w.wire = w.tables.share(newNameSet(names)), nil
	} else {
		w.names, w.wire = w.tables.shareSotw(newNameSet(names))
	}
	w.namesGen++
	return true
}

func (s *Server) newConn(p *model.Proxy, kind string) *conn {
	return &conn{
		s:           s,
		id:          p.ID + "-" + strconv.FormatUint(s.connSeq.Add(1), 10),
		proxy:       p,
		kind:        kind,
		connectedAt: time.Now(),
		wake:        make(chan struct{}, 1),
		watches:     map[string]*watch{},
	}
}

// parseFirstNode parses the node of a stream's first request, mapping a bad
// node to InvalidArgument.
func parseFirstNode(n *corev3.Node) (*model.Proxy, error) {
	p, err := model.ParseNode(n)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "xds: first request of the stream must carry a valid node: %v", err)
	}
	return p, nil
}

func (c *conn) enqueue(req *model.PushRequest, now time.Time) {
	c.mu.Lock()
	if c.pending == nil {
		c.pendingSince = now
		c.s.fan.enqueued() // until the loop has pushed it (pushEnded)
	}
	c.pending = c.pending.Merge(req)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// pushEnded notes that the loop has finished a push (handed its responses
// to gRPC, or failed): the connection no longer sends for the fan-out, and
// owes answers to whatever it sent that its client has not answered.
func (c *conn) pushEnded() {
	c.mu.Lock()
	owing := 0
	switch owes := len(c.inflight.sent) > 0; {
	case owes && !c.owes:
		owing = 1
	case !owes && c.owes:
		owing = -1
	}
	c.owes = len(c.inflight.sent) > 0
	st := c.s.fan.change(true, owing)
	c.mu.Unlock()
	c.s.fan.settle(st, true)
}

// unlockAnswered releases the connection's part in the fan-out once its
// client has answered every response it was sent (inflight is empty), and
// unlocks mu, which the caller holds (after inflight.answered); the
// fan-out is settled outside the lock.
func (c *conn) unlockAnswered() {
	if !c.owes || len(c.inflight.sent) > 0 {
		c.mu.Unlock()
		return
	}
	c.owes = false
	st := c.s.fan.change(false, -1)
	c.mu.Unlock()
	c.s.fan.settle(st, false)
}

// settleAnswers is unlockAnswered for the loop, after it handled a
// request: the responses that request caused count as owed with those
// before.
func (c *conn) settleAnswers() {
	c.mu.Lock()
	c.unlockAnswered()
}

// leave settles the connection's part in the fan-out once its stream has
// ended (no push is enqueued once removeConn returned): a push left
// pending is dropped, and answers still owed are no longer waited for.
func (c *conn) leave() {
	c.mu.Lock()
	dropped := c.pending != nil
	c.pending = nil
	owing := 0
	if c.owes {
		c.owes, owing = false, -1
	}
	if !dropped && owing == 0 {
		c.mu.Unlock()
		return
	}
	st := c.s.fan.change(dropped, owing)
	c.mu.Unlock()
	c.s.fan.settle(st, dropped)
}

func (c *conn) takePending() (*model.PushRequest, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, since := c.pending, c.pendingSince
	c.pending = nil
	return req, since
}

func (c *conn) addWatch(w *watch) {
	c.mu.Lock()
	c.watches[w.typeURL] = w
	// A new slice, so that a caller still holding the previous one (a
	// push in progress, Status) keeps a consistent list.
	ordered := make([]*watch, 0, len(c.watches))
	for _, x := range c.watches {
		ordered = append(ordered, x)
	}
	slices.SortFunc(ordered, func(a, b *watch) int {
		if d := orderRank(a.typeURL) - orderRank(b.typeURL); d != 0 {
			return d
		}
		return strings.Compare(a.typeURL, b.typeURL)
	})
	c.ordered = ordered
	c.mu.Unlock()
}

// orderedWatches returns the watches in push order (CDS, EDS, LDS, RDS,
// others). The slice is kept from one addWatch to the next (every push
// asked for it, and sorting it each time was a few percent of a push to
// a thousand proxies): callers must not modify it. Read by the loop, or
// under mu.
func (c *conn) orderedWatches() []*watch { return c.ordered }

// scopedNames says what a full push of w's type regenerates when req
// narrows it to the routes of req.Hosts (Config.RouteScope): every name
// (nil, false), only names, or nothing (skip). A push at one of the
// proxy's addresses, and a wildcard watch, regenerate everything. scope
// holds the push's RouteScoper for the connection once one was asked for
// (nil before): the proxy's scope is looked up once per push, not per type.
func (c *conn) scopedNames(pc *model.PushContext, req *model.PushRequest, w *watch, scope *RouteScoper) (names []string, skip bool) {
	if req.Hosts == nil || c.s.routeScope == nil || pc == nil || w.wildcard || atAddress(req, c.proxy) {
		return nil, false
	}
	if *scope == nil {
		*scope = c.s.routeScope(pc, c.proxy, req.Hosts)
	}
	all, keep := (*scope)(w.typeURL)
	if all {
		return nil, false
	}
	if keep != nil {
		// The set itself, not sortedNames' copy: a push wakes every
		// proxy, and most keep none or one of their names.
		for _, n := range w.names {
			if v := n.Value(); keep(v) {
				names = append(names, v)
			}
		}
	}
	return names, len(names) == 0
}

// atAddress reports whether req changed workloads at one of p's addresses.
func atAddress(req *model.PushRequest, p *model.Proxy) bool {
	for _, ip := range p.IPAddresses {
		if _, ok := req.Addresses[ip]; ok {
			return true
		}
	}
	return false
}

// nextNonce returns a new response nonce. Nonces are random, not counted:
// a client must not be able to name a response it has not received
// (inflight), as it could name the next number of a counter.
func (c *conn) nextNonce() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}

// generate runs the generator and marshals its output (with Delta versions
// when withVersions) in one of the server's push slots, which it returns held
// (slot.release frees it): the caller keeps it while handing the response to
// gRPC. A failure is recorded on the watch and logged, ok is false and the
// slot is already free; the caller keeps the last config on the proxy.
func (c *conn) generate(ctx context.Context, pc *model.PushContext, w *watch, names []string, withVersions bool) (out []marshaled, slot *pushSlot, ok bool, err error) {
	slot, err = c.s.throttle(ctx, &c.slot)
	if err != nil {
		return nil, nil, false, err
	}
	res, err := c.s.generate(pc, c.proxy, w.typeURL, names)
	if err == nil {
		out, _, err = marshalResources(c.s.cacheFor(pc), w.typeURL, res, withVersions)
	}
	if err != nil {
		slot.release()
		err = fmt.Errorf("proxy %s: %w", c.proxy.ID, err)
		// The same failure on every push (an unknown type URL, say) is
		// logged once at ERROR, then at DEBUG until it changes: a client
		// must not be able to fill the log with one line per push.
		lvl := slog.LevelError
		if w.lastError == err.Error() {
			lvl = slog.LevelDebug
		}
		c.s.log.Log(context.Background(), lvl, "xds: generate failed; proxy keeps its last config", "proxy", c.proxy.ID, "type", shortType(w.typeURL), "version", pc.Version, "err", err)
		c.mu.Lock()
		w.lastError = err.Error()
		c.mu.Unlock()
		return nil, nil, false, nil
	}
	if w.lastError != "" {
		c.mu.Lock()
		w.lastError = ""
		c.mu.Unlock()
	}
	return out, slot, true, nil
}

// recordNACK notes a rejected response and counts it.
func (c *conn) recordNACK(w *watch, nonce, msg string) {
	c.mu.Lock()
	w.nonceNacked = nonce
	w.lastNACK = msg
	w.lastNACKAt = time.Now()
	c.mu.Unlock()
	c.s.metrics.rejects.WithLabelValues(shortType(w.typeURL)).Inc()
	c.s.log.Warn("xds: proxy rejected config (NACK); it keeps its last good config",
		"proxy", c.proxy.ID, "type", shortType(w.typeURL), "nonce", nonce, "version", w.versionSent, "error", msg)
}

func (c *conn) recordACK(w *watch, nonce, version string) {
	c.mu.Lock()
	w.nonceAcked = nonce
	w.versionAcked = version
	c.mu.Unlock()
}

// handing notes the response about to be handed to gRPC, so that an ACK
// of it that arrives before the loop gets back from Send is not taken for
// a stale one (ACKs are handled on the receiving goroutine: absorbACK).
func (c *conn) handing(w *watch, nonce, version string) {
	c.mu.Lock()
	c.sending, c.sendingNonce, c.sendingVersion = w.typeURL, nonce, version
	c.mu.Unlock()
}

// latestSent returns the nonce and version of w's latest response: the one
// in flight, if any, else the last one sent. Under mu.
func (c *conn) latestSent(w *watch) (nonce, version string) {
	if c.sending == w.typeURL {
		return c.sendingNonce, c.sendingVersion
	}
	return w.nonceSent, w.versionSent
}

// sent records the response in flight (handing) as sent and updates the
// metrics.
func (c *conn) sent(w *watch, resources, bytes int, since, start time.Time) {
	now := time.Now()
	c.mu.Lock()
	w.nonceSent, w.versionSent = c.sendingNonce, c.sendingVersion
	c.sending, c.sendingNonce, c.sendingVersion = "", "", ""
	w.resources = resources
	w.bytesSent += int64(bytes)
	w.responses++
	c.mu.Unlock()
	t := shortType(w.typeURL)
	c.s.metrics.pushes.WithLabelValues(t).Inc()
	c.s.metrics.sendTime.Observe(now.Sub(start).Seconds())
	c.s.metrics.pushTime.WithLabelValues(t).Observe(now.Sub(since).Seconds())
}

// outbox sends on a stream from its own goroutine, so the connection loop can
// give up on a stuck Send (server closing, client gone, send timeout); the
// gRPC stream ends when the handler returns, which releases the Send.
type outbox[T any] struct {
	sendNow func(*T) error // the stream's Send, for the loop's own sends (deliver)
	in      chan *T
	res     chan error
	stop    chan struct{}
	timeout time.Duration
	// hold and limit time one send (maxSlotHold, timeout); made once and
	// reset per send rather than allocated per response. Stopped between
	// sends; used by the sending goroutine only.
	hold, limit *time.Timer
}

// stoppedTimer returns a timer that has not started.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func startOutbox[T any](send func(*T) error, timeout time.Duration) *outbox[T] {
	o := &outbox[T]{sendNow: send, in: make(chan *T), res: make(chan error, 1), stop: make(chan struct{}), timeout: timeout, hold: stoppedTimer()}
	if timeout > 0 {
		o.limit = stoppedTimer()
	}
	go func() {
		for {
			select {
			case m := <-o.in:
				o.res <- send(m)
			case <-o.stop:
				return
			}
		}
	}()
	return o
}

var errClosing = status.Error(codes.Unavailable, "xds: server shutting down")

// send hands m to the sender goroutine and waits for the result. After an
// error the stream must end: the sender may still be inside Send. slot is
// freed when Send returns, or after maxSlotHold if it takes longer.
func (o *outbox[T]) send(ctx context.Context, closing <-chan struct{}, m *T, slot *pushSlot) error {
	defer slot.release()
	// A stopped or reset timer delivers no stale tick (Go 1.23 timers).
	o.hold.Reset(maxSlotHold)
	defer o.hold.Stop()
	hold := o.hold
	select {
	case o.in <- m:
	case <-closing:
		return errClosing
	case <-ctx.Done():
		return ctx.Err()
	case <-hold.C:
		slot.release()
		select {
		case o.in <- m:
		case <-closing:
			return errClosing
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var timeout <-chan time.Time
	if o.limit != nil {
		o.limit.Reset(o.timeout)
		defer o.limit.Stop()
		timeout = o.limit.C
	}
	for {
		select {
		case err := <-o.res:
			return err
		case <-closing:
			return errClosing
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return status.Errorf(codes.DeadlineExceeded, "xds: send did not complete within %v", o.timeout)
		case <-hold.C:
			slot.release() // a slow client waits on its own from now on
		}
	}
}

func (o *outbox[T]) close() { close(o.stop) }

type recvItem[T any] struct {
	msg *T
	err error
}

// startRecv reads the stream on its own goroutine until it fails or stop
// closes. A request absorb takes (a plain ACK) is handled there and then,
// without waking the loop.
func startRecv[T any](recv func() (*T, error), absorb func(*T) bool, stop <-chan struct{}) <-chan recvItem[T] {
	ch := make(chan recvItem[T], 1)
	go func() {
		for {
			m, err := recv()
			if err == nil && absorb(m) {
				continue
			}
			select {
			case ch <- recvItem[T]{m, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// loop runs a connection until the stream ends: requests are handled in
// order, and a pending push runs between them.
func loop[T any](ctx context.Context, c *conn, reqs <-chan recvItem[T], handle func(*T) error, push func(*model.PushRequest, time.Time) error) error {
	for {
		select {
		case it := <-reqs:
			if it.err != nil {
				return streamEnded(it.err)
			}
			if err := handle(it.msg); err != nil {
				return err
			}
			c.settleAnswers()
		case <-c.wake:
			if req, since := c.takePending(); req != nil {
				err := push(req, since)
				c.pushEnded()
				if err != nil {
					return err
				}
				if !req.Start.IsZero() {
					since = req.Start
				}
				c.s.metrics.convergence.Observe(time.Since(since).Seconds())
			}
		case <-ctx.Done():
			return nil
		case <-c.s.closing:
			return errClosing
		}
	}
}

// streamEnded maps a Recv error: a client closing its side is not an error.
func streamEnded(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
		return nil
	}
	return err
}

// streamHandler is one ADS variant's per-stream state machine.
type streamHandler[Req any] interface {
	handle(*Req) error
	push(*model.PushRequest, time.Time) error
	// absorbACK handles, on the receiving goroutine and under conn.mu, a
	// request that only acknowledges a response (no subscription change,
	// no error), and reports whether it did; any other request goes to
	// the loop, in order. An ACK handled before requests still queued for
	// the loop changes nothing they do: it only records what the client
	// has received (nonceAcked, versionAcked, inflight).
	absorbACK(*Req) bool
}

// serveStream runs one ADS stream of either variant: it identifies the proxy
// from the first request's node, registers the connection, then handles
// requests and pushes until the stream or the server ends. recv reads the
// next request; it gets the connection once there is one (nil for the first
// request).
func serveStream[Req any, Resp any, PReq interface {
	*Req
	GetNode() *corev3.Node
	GetTypeUrl() string
	GetErrorDetail() *statuspb.Status
}](s *Server, kind string, stream interface {
	Send(*Resp) error
	Context() context.Context
}, recv func(*conn) (*Req, error), newHandler func(*conn, *outbox[Resp]) streamHandler[Req]) error {
	select {
	case <-s.closing:
		return errClosing
	default:
	}
	first, err := recv(nil)
	if err != nil {
		return streamEnded(err)
	}
	p, err := parseFirstNode(PReq(first).GetNode())
	if err != nil {
		return err
	}
	if s.authorize != nil {
		if err := s.authorize(stream.Context(), p); err != nil {
			s.log.Warn("xds: stream refused", "proxy", p.ID, "err", err)
			return err
		}
	}
	c := s.newConn(p, kind)
	if err := s.addConn(c); err != nil {
		return err
	}
	if s.connected != nil {
		s.connected(stream.Context(), p)
	}
	out := startOutbox(stream.Send, s.sendTimeout)
	st := newHandler(c, out)
	handle := func(r *Req) error {
		if PReq(r).GetTypeUrl() == HealthInfoType { // a report, not a subscription
			if s.health != nil {
				d := PReq(r).GetErrorDetail()
				s.health(stream.Context(), p, d == nil, d.GetMessage())
			}
			return nil
		}
		return st.handle(r)
	}
	stop := make(chan struct{})
	reqs := startRecv(func() (*Req, error) { return recv(c) }, st.absorbACK, stop)
	err = handle(first)
	if err == nil {
		err = loop(stream.Context(), c, reqs, handle, st.push)
	}
	close(stop)
	out.close()
	s.removeConn(c, err)
	c.leave()
	if s.disconn != nil {
		s.disconn(p)
	}
	return err
}
