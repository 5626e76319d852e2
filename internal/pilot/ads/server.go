// Package ads is Pilot's xDS v3 Aggregated Discovery Service: it serves
// generated configuration to proxies over gRPC, in both the state-of-the-world
// (SotW) and the incremental (Delta) protocol variants, and pushes updates to
// every connected proxy when the push context changes.
//
// Each connection has its own goroutine loop and one pending, merged push
// request: Push never blocks, a slow or stuck proxy delays nobody else, and
// memory per connection stays bounded however fast pushes arrive. At most
// Config.PushThrottle connections generate at once; resources the generators
// share between proxies within a push are marshaled once (marshalCache).
package ads

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// RouteScoper says, for a type URL, whether a push narrowed to some hosts'
// routes regenerates every resource of that type (all) or those keep
// accepts by name (keep nil: none); see Config.RouteScope.
type RouteScoper = func(typeURL string) (all bool, keep func(name string) bool)

// Config configures a Server.
type Config struct {
	// Generate produces the resources of one type for one proxy. Required.
	Generate model.GenerateFunc
	// ClusterHost maps an EDS cluster name to its service hostname, so that an
	// endpoint-only push regenerates only the clusters of changed hosts. When
	// it is nil, or returns ok false for a name, that cluster is regenerated on
	// every endpoint-only push (generate.ClusterHost fits Istio's names).
	ClusterHost func(clusterName string) (host string, ok bool)
	// RouteScope, when set, narrows a full push that carries Hosts (a
	// change of those hosts' HTTP routes alone): for each type it pushes, a
	// connection regenerates only the names the function RouteScope returns
	// keeps, and skips the type when it keeps none (generate.RouteScope).
	// It is called at most once per connection and push, its function once
	// per type. Without it, such a push regenerates every name of its types.
	RouteScope func(pc *model.PushContext, p *model.Proxy, hosts map[string]struct{}) RouteScoper
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics registers the pilot_xds* metrics; nil means not registered.
	Metrics prometheus.Registerer
	// QueueSize is unused: each connection holds at most one pending push,
	// into which later pushes are merged, so no queue length is needed.
	QueueSize int
	// SendTimeout, when positive, closes a stream whose single Send takes
	// longer (Istio's PILOT_XDS_SEND_TIMEOUT). Zero waits as long as the
	// client stays connected; a stuck client then holds only its own stream.
	SendTimeout time.Duration
	// PushThrottle bounds how many connections generate, marshal and hand
	// a response to gRPC at the same time (Istio's PILOT_PUSH_THROTTLE),
	// which bounds the memory a push to many proxies needs at once. A
	// connection whose client reads slowly gives its slot up after a second
	// (maxSlotHold) and waits on its own. 0 means DefaultPushThrottle;
	// negative means no limit.
	PushThrottle int
	// DisableCache turns off the per-push cache of marshaled resources that
	// the proxies of one push share (Istio's PILOT_ENABLE_XDS_CACHE=false):
	// every proxy's resources are then marshaled on their own.
	DisableCache bool
	// Authorize, when set, is asked about every new stream once its node is
	// known: an error (a gRPC status) refuses the stream. mastd binds the
	// node to the client certificate's SPIFFE identity with it.
	Authorize func(ctx context.Context, p *model.Proxy) error
	// Connected and Disconnected, when set, are told about every stream
	// once it is accepted (after Authorize) and once it has ended (WorkloadGroup
	// auto-registration). Connected gets the stream's context.
	Connected    func(ctx context.Context, p *model.Proxy)
	Disconnected func(p *model.Proxy)
	// Health, when set, gets a proxy's health reports: requests of type
	// HealthInfoType (istio-agent's readiness probe results), which are
	// never answered. Without it they are ignored.
	Health func(ctx context.Context, p *model.Proxy, healthy bool, message string)
	// Idle, when set, is called each time a fan-out is complete: Push has
	// enqueued every connection, each has handed its responses to gRPC, and
	// each client has answered (ACKed or NACKed) what was pushed to it or
	// its stream has ended; or IdleWait has passed since the last of those
	// responses was handed to gRPC with some clients still to answer (a
	// client that never answers must not keep it from being called). It
	// runs on a connection's goroutine, Push's caller or a timer's, and
	// must not block. mastd collects garbage then (push.IdleGC), rather
	// than in the next fan-out or the rest of this one.
	Idle func()
	// IdleWait bounds how long Idle waits for clients' answers once every
	// response of a fan-out has been handed to gRPC; 0 means
	// DefaultIdleWait.
	IdleWait time.Duration
	// MaxConnsPerNode bounds the streams open at once for one node ID; a
	// further one is refused with ResourceExhausted. 0 means
	// DefaultMaxConnsPerNode; negative means no limit.
	MaxConnsPerNode int
}

// DefaultMaxConnsPerNode bounds streams per node ID: a proxy needs one, and
// a few more while a reconnect overlaps the old stream's teardown.
const DefaultMaxConnsPerNode = 8

// DefaultPushThrottle is Istio's PILOT_PUSH_THROTTLE default.
const DefaultPushThrottle = 100

// Server is the ADS server. Create it with New, register it on a gRPC server
// with Register, and feed it with Push.
type Server struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer

	generate    model.GenerateFunc
	clusters    *clusterIndex // nil without Config.ClusterHost
	routeScope  func(*model.PushContext, *model.Proxy, map[string]struct{}) RouteScoper
	log         *slog.Logger
	metrics     *metrics
	sendTimeout time.Duration
	pushSlots   chan struct{} // nil: no push throttle
	noCache     bool
	authorize   func(context.Context, *model.Proxy) error
	connected   func(context.Context, *model.Proxy)
	disconn     func(*model.Proxy)
	health      func(context.Context, *model.Proxy, bool, string)
	maxPerNode  int
	fan         *fanout // when a fan-out is complete (Config.Idle)

	pc     atomic.Pointer[model.PushContext]
	cache  atomic.Pointer[marshalCache] // of the current push context
	nested *marshalCache                // nested messages' wire forms, kept across pushes (nil without cache)
	known  *knownTables                 // Delta clients' known versions, shared between proxies
	names  *nameTables                  // subscriptions, shared between proxies

	mu      sync.RWMutex
	conns   map[*conn]struct{}
	perNode map[string]int // open streams per node ID, guarded by mu
	connSeq atomic.Uint64

	closeOnce sync.Once
	closing   chan struct{}
}

// New returns a Server. It has no push context until the first Push; requests
// arriving before then are answered at that push.
func New(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var slots chan struct{}
	switch {
	case cfg.PushThrottle == 0:
		slots = make(chan struct{}, DefaultPushThrottle)
	case cfg.PushThrottle > 0:
		slots = make(chan struct{}, cfg.PushThrottle)
	}
	maxPerNode := cfg.MaxConnsPerNode
	if maxPerNode == 0 {
		maxPerNode = DefaultMaxConnsPerNode
	}
	var clusters *clusterIndex
	if cfg.ClusterHost != nil {
		clusters = newClusterIndex(cfg.ClusterHost)
	}
	var nested *marshalCache
	if !cfg.DisableCache {
		nested = newMarshalCache(nil)
	}
	return &Server{
		nested:      nested,
		known:       newKnownTables(),
		names:       newNameTables(),
		authorize:   cfg.Authorize,
		connected:   cfg.Connected,
		disconn:     cfg.Disconnected,
		health:      cfg.Health,
		maxPerNode:  maxPerNode,
		fan:         newFanout(cfg.Idle, cfg.IdleWait),
		perNode:     map[string]int{},
		pushSlots:   slots,
		noCache:     cfg.DisableCache,
		generate:    cfg.Generate,
		clusters:    clusters,
		routeScope:  cfg.RouteScope,
		log:         log,
		metrics:     newMetrics(cfg.Metrics, log),
		sendTimeout: cfg.SendTimeout,
		conns:       map[*conn]struct{}{},
		closing:     make(chan struct{}),
	}
}

// Register registers the AggregatedDiscoveryService (SotW and Delta) on g.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s)
}

// Push makes pc the current push context and schedules req on every
// connection it concerns (an endpoint-only push: those subscribed to a
// changed host's clusters). It never blocks: a connection already holding a pending push
// merges req into it. A nil pc keeps the current one; a nil req is a full push.
func (s *Server) Push(pc *model.PushContext, req *model.PushRequest) {
	if pc != nil && s.pc.Swap(pc) != pc {
		s.cache.Store(nil) // the old push's marshaled resources are garbage now
	}
	if req == nil {
		req = &model.PushRequest{Full: true}
	}
	// An endpoint-only push wakes only the connections it can send
	// something (conn.wantsEndpoints); any other push wakes every one.
	edsOnly := s.clusters != nil && !req.Full && len(req.Addresses) == 0 && len(req.EDSHosts) > 0
	now := time.Now()
	// Push counts as sending itself until every connection has its
	// request: a connection that finished before the last was enqueued
	// must not take the fan-out for complete (Config.Idle).
	s.fan.begin()
	s.mu.RLock()
	for c := range s.conns {
		if edsOnly && !c.wantsEndpoints(s.clusters, req.EDSHosts) {
			continue
		}
		c.enqueue(req, now)
	}
	s.mu.RUnlock()
	s.fan.settle(s.fan.change(true, 0), true)
}

// Close ends every stream with codes.Unavailable and refuses new ones, so
// that grpc.Server.GracefulStop can complete. Safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// maxSlotHold bounds how long a connection keeps its push slot while gRPC
// takes its response (Send waits for the client's flow control): long enough
// that the responses in flight stay bounded like the generation, short enough
// that a stuck client does not hold up the pushes to everyone else.
const maxSlotHold = time.Second

// pushSlot is a held push throttle slot. release is idempotent; a nil slot
// (no throttle) releases nothing. Used by one goroutine.
type pushSlot struct {
	slots chan struct{}
	done  bool
}

func (p *pushSlot) release() {
	if p == nil || p.done {
		return
	}
	p.done = true
	if p.slots != nil {
		<-p.slots
	}
}

// throttle waits for a push slot and returns it as slot, which the caller
// reuses from one response to the next (one connection's loop goroutine
// holds at most one slot at a time, so no slot is allocated per response).
func (s *Server) throttle(ctx context.Context, slot *pushSlot) (*pushSlot, error) {
	if s.pushSlots == nil {
		*slot = pushSlot{}
		return slot, nil
	}
	// A free slot is taken without the three-way select, which locks the
	// context's and the server's channels too: at a fan-out a thousand
	// loops reach here at once.
	select {
	case s.pushSlots <- struct{}{}:
		*slot = pushSlot{slots: s.pushSlots}
		return slot, nil
	default:
	}
	select {
	case s.pushSlots <- struct{}{}:
		*slot = pushSlot{slots: s.pushSlots}
		return slot, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-s.closing:
		return nil, errClosing
	}
}

// current returns the push context to generate from, or nil before the first Push.
func (s *Server) current() *model.PushContext { return s.pc.Load() }

func (s *Server) addConn(c *conn) error {
	s.mu.Lock()
	if s.maxPerNode > 0 && s.perNode[c.proxy.ID] >= s.maxPerNode {
		s.mu.Unlock()
		s.log.Debug("xds: stream refused: too many streams for this node", "proxy", c.proxy.ID, "limit", s.maxPerNode)
		return status.Errorf(codes.ResourceExhausted, "xds: node %q already has %d streams open (limit %d)", c.proxy.ID, s.maxPerNode, s.maxPerNode)
	}
	s.perNode[c.proxy.ID]++
	s.conns[c] = struct{}{}
	// Set under the lock: set after it, a connection's count could be
	// overwritten by an older one (three streams closing at once left
	// pilot_xds at 2 with none connected).
	s.metrics.connected.Set(float64(len(s.conns)))
	s.mu.Unlock()
	s.log.Info("xds: proxy connected", "proxy", c.proxy.ID, "conn", c.id, "stream", c.kind)
	return nil
}

func (s *Server) removeConn(c *conn, err error) {
	s.mu.Lock()
	if s.perNode[c.proxy.ID]--; s.perNode[c.proxy.ID] <= 0 {
		delete(s.perNode, c.proxy.ID)
	}
	delete(s.conns, c)
	s.metrics.connected.Set(float64(len(s.conns)))
	s.mu.Unlock()
	if err != nil {
		s.log.Info("xds: proxy disconnected", "proxy", c.proxy.ID, "conn", c.id, "err", err)
	} else {
		s.log.Info("xds: proxy disconnected", "proxy", c.proxy.ID, "conn", c.id)
	}
}
