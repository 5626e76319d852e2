package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Protocol is the ADS variant a simulated proxy speaks.
type Protocol string

// The two ADS variants.
const (
	SotW  Protocol = "sotw"  // StreamAggregatedResources
	Delta Protocol = "delta" // DeltaAggregatedResources
	// DeltaVHDS is Delta with on-demand virtual hosts (FleetConfig.OnDemand).
	DeltaVHDS Protocol = "delta+vhds"
)

// The simulated proxies' receive windows: mast-proxy's (h2client's
// defaults).
const (
	clientStreamWindow = 1 << 20
	clientConnWindow   = 4 << 20
)

const (
	cds = iota
	eds
	lds
	rds
	vhds
	numTypes
)

func typeIndex(typeURL string) int {
	switch typeURL {
	case generate.ClusterType:
		return cds
	case generate.EndpointType:
		return eds
	case generate.ListenerType:
		return lds
	case generate.RouteType:
		return rds
	case generate.VirtualHostType:
		return vhds
	}
	return -1
}

// FleetConfig configures a Fleet of simulated proxies.
type FleetConfig struct {
	Addr     string // the ADS server
	Protocol Protocol
	Clients  int
	Services int // the mesh's size, to give each proxy a workload identity (see Node)
	// Parallel bounds how many proxies fetch their initial configuration at
	// once, as a fleet rolls out gradually; 0 means 20.
	Parallel int
	// OnDemand (Delta only) makes every proxy ask for its virtual hosts on
	// demand (VHDS): its route configurations come without virtual hosts,
	// and it subscribes to the ones of the services it calls (CalledHosts).
	OnDemand bool
}

// OnDemandCalls is how many services an OnDemand proxy calls.
const OnDemandCalls = 10

// CalledHosts are the hosts ("HOST:PORT") proxy k of a mesh of services
// calls when it takes its virtual hosts on demand: service 0, the one every
// config change alters (so every proxy must receive each change, the worst
// case for on-demand routing), and OnDemandCalls-1 others spread over the mesh.
func CalledHosts(k, services int) []string {
	out := []string{Hostname(0) + ":8080"}
	for j := 1; j < OnDemandCalls && j < services; j++ {
		i := (k*7 + j*97) % services
		if i == 0 {
			i = j
		}
		out = append(out, Hostname(i)+":8080")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// types are the types the fleet's proxies receive.
func (cfg FleetConfig) types() []string {
	if cfg.OnDemand {
		return CountedTypes
	}
	return XDSTypes
}

// Fleet is a set of simulated proxies, each with its own gRPC connection and
// node ID, subscribing as Envoy does: CDS and LDS wildcard, then the EDS
// clusters and RDS route configurations those reference, ACKing every
// response. It keeps per-type counters and the latest ACKed version of each
// proxy, so that a caller can wait for "every proxy has ACKed a new version".
type Fleet struct {
	cfg     FleetConfig
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	failed  chan struct{} // closed at the first stream error
	failErr error

	pool  bufPool  // received messages' buffers
	names interner // resource names, one string each for the fleet

	mu      sync.Mutex
	clients []*client
	w       *Expectation
	closing bool
}

type typeState struct {
	acked     string // version of the latest ACKed response
	responses int64
	bytes     int64
	// marked is the expectation whose marker a response of this type
	// carried (received after the expectation was made).
	marked *Expectation
}

type client struct {
	f     *Fleet
	idx   int
	conn  *grpc.ClientConn
	types [numTypes]typeState // guarded by f.mu
}

// Connect connects cfg.Clients proxies and returns when every one has ACKed
// a response of each of the four types.
func Connect(ctx context.Context, cfg FleetConfig) (*Fleet, error) {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 20
	}
	runCtx, cancel := context.WithCancel(context.Background())
	f := &Fleet{cfg: cfg, cancel: cancel, failed: make(chan struct{})}
	f.clients = make([]*client, cfg.Clients)
	for i := range f.clients {
		f.clients[i] = &client{f: f, idx: i}
	}
	initial := f.Expect(cfg.types()...)
	sem := make(chan struct{}, cfg.Parallel)
	perClient := make([]chan struct{}, cfg.Clients)
	for i := range perClient {
		perClient[i] = make(chan struct{})
	}
	initial.perClient = perClient
	for _, c := range f.clients {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-f.failed:
			f.Close()
			return nil, f.failErr
		}
		// Static flow-control windows, mast-proxy's h2client defaults (1 MiB
		// per stream, 4 MiB per connection; istio-agent also sets static
		// ones): with grpc-go's dynamic windows every response would make
		// the simulated proxy send a BDP ping that the control plane must
		// read and answer, a write and a read per response that neither
		// mast-proxy nor Envoy causes.
		conn, err := grpc.NewClient(cfg.Addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(clientStreamWindow),
			grpc.WithInitialConnWindowSize(clientConnWindow),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("client %d: %w", c.idx, err)
		}
		c.conn = conn
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			err := c.run(runCtx)
			if err != nil && runCtx.Err() == nil {
				f.fail(fmt.Errorf("proxy %d: %w", c.idx, err))
			}
		}()
		go func() {
			select {
			case <-perClient[c.idx]:
			case <-runCtx.Done():
			}
			<-sem
		}()
	}
	if _, err := initial.Wait(ctx); err != nil {
		f.Close()
		return nil, fmt.Errorf("initial configuration: %w", err)
	}
	return f, nil
}

func (f *Fleet) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failErr == nil && !f.closing {
		f.failErr = err
		close(f.failed)
	}
}

// Close disconnects every proxy.
func (f *Fleet) Close() {
	f.mu.Lock()
	f.closing = true
	f.mu.Unlock()
	f.cancel()
	for _, c := range f.clients {
		if c.conn != nil {
			c.conn.Close()
		}
	}
	f.wg.Wait()
}

// Counter counts responses of one type, summed over the fleet.
type Counter struct {
	Responses int64 `json:"responses"`
	Bytes     int64 `json:"bytes"`
}

// Totals returns the responses received so far, by short type name.
func (f *Fleet) Totals() map[string]Counter {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]Counter{}
	for _, c := range f.clients {
		for ti := range numTypes {
			k := ShortType(CountedTypes[ti])
			t := out[k]
			t.Responses += c.types[ti].responses
			t.Bytes += c.types[ti].bytes
			out[k] = t
		}
	}
	return out
}

// Expectation waits until every proxy has ACKed, for each of its types, a
// version other than the one it had ACKed when the expectation was made
// and, with a marker, a response of that type carrying the marker's bytes
// (the change itself, not just a new version).
type Expectation struct {
	f         *Fleet
	marker    []byte
	want      []int
	base      [][numTypes]string
	ok        []bool
	pending   int
	first     time.Time // earliest response of a new version
	last      time.Time // latest ACK completing a proxy
	done      chan struct{}
	perClient []chan struct{} // closed as each proxy completes; optional
}

// Expect starts an expectation for the given types (full type URLs).
// Only one expectation is active at a time.
func (f *Fleet) Expect(typeURLs ...string) *Expectation {
	return f.ExpectMarker(nil, typeURLs...)
}

// ExpectMarker starts an expectation for the given types that each proxy
// meets only once it has ACKed a response of each type whose bytes contain
// marker (see ConfigMarker and EndpointMarker); nil expects new versions
// only.
func (f *Fleet) ExpectMarker(marker []byte, typeURLs ...string) *Expectation {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := &Expectation{f: f, marker: marker, base: make([][numTypes]string, len(f.clients)), ok: make([]bool, len(f.clients)), pending: len(f.clients), done: make(chan struct{})}
	for _, t := range typeURLs {
		e.want = append(e.want, typeIndex(t))
	}
	for i, c := range f.clients {
		for ti := range numTypes {
			e.base[i][ti] = c.types[ti].acked
		}
	}
	if e.pending == 0 {
		close(e.done)
	}
	f.w = e
	return e
}

// Timing is when an expectation was met.
type Timing struct {
	FirstResponse time.Time // the first response of a new version, at any proxy
	LastACK       time.Time // the ACK that completed the last proxy
}

// Wait blocks until the expectation is met, ctx is done or a stream fails.
func (e *Expectation) Wait(ctx context.Context) (Timing, error) {
	select {
	case <-e.done:
	case <-ctx.Done():
		e.f.mu.Lock()
		n := e.pending
		e.f.mu.Unlock()
		return Timing{}, fmt.Errorf("%d of %d proxies incomplete: %w", n, len(e.ok), ctx.Err())
	case <-e.f.failed:
		return Timing{}, e.f.failErr
	}
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	if e.f.w == e {
		e.f.w = nil
	}
	return Timing{FirstResponse: e.first, LastACK: e.last}, nil
}

// received records a response (its bytes) before the proxy processes it.
func (f *Fleet) received(c *client, ti int, version string, msg []byte, at time.Time) {
	f.mu.Lock()
	e := f.w
	f.mu.Unlock()
	// Look for the marker outside the lock: the fleet's proxies scan at once.
	marked := e != nil && e.marker != nil && slices.Contains(e.want, ti) && bytes.Contains(msg, e.marker)
	f.mu.Lock()
	st := &c.types[ti]
	st.responses++
	st.bytes += int64(len(msg))
	if marked && f.w == e {
		st.marked = e
	}
	if e := f.w; e != nil && version != e.base[c.idx][ti] && (e.first.IsZero() || at.Before(e.first)) {
		e.first = at
	}
	f.mu.Unlock()
}

// acked records an ACK the proxy has handed to its stream.
func (f *Fleet) acked(c *client, ti int, version string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.types[ti].acked = version
	e := f.w
	if e == nil || e.ok[c.idx] {
		return
	}
	for _, w := range e.want {
		if a := c.types[w].acked; a == "" || a == e.base[c.idx][w] {
			return
		}
		if e.marker != nil && c.types[w].marked != e {
			return
		}
	}
	e.ok[c.idx] = true
	e.pending--
	if at.After(e.last) {
		e.last = at
	}
	if e.perClient != nil {
		close(e.perClient[c.idx])
	}
	if e.pending == 0 {
		close(e.done)
	}
}

// The ADS methods, called with the wire codec.
const (
	sotwMethod  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	deltaMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)

func (c *client) run(ctx context.Context) error {
	node := Node(c.idx, c.f.cfg.Services)
	if c.f.cfg.OnDemand {
		node.Metadata.Fields[model.OnDemandRoutesKey] = structpb.NewStringValue("true")
	}
	method := sotwMethod
	if c.f.cfg.Protocol == Delta {
		method = deltaMethod
	}
	stream, err := c.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodecV2(wireCodec{pool: &c.f.pool}))
	if err != nil {
		return err
	}
	first := true
	send := func(m *outMsg) error {
		if first {
			switch r := m.head.(type) {
			case *discoveryv3.DiscoveryRequest:
				r.Node = node
			case *discoveryv3.DeltaDiscoveryRequest:
				r.Node = node
			}
			first = false
		}
		return stream.SendMsg(m)
	}
	recv := func(m *inMsg) error { return stream.RecvMsg(m) }
	if c.f.cfg.Protocol == Delta {
		return c.runDelta(send, recv)
	}
	return c.runSotW(send, recv)
}

// runSotW subscribes and ACKs over a state-of-the-world stream.
func (c *client) runSotW(send func(*outMsg) error, recv func(*inMsg) error) error {
	var names [numTypes][]string   // EDS and RDS subscriptions
	var namesWire [numTypes][]byte // the same, encoded as resource_names
	var nonce, version [numTypes]string
	if err := send(&outMsg{head: &discoveryv3.DiscoveryRequest{TypeUrl: generate.ClusterType}}); err != nil {
		return err
	}
	if err := send(&outMsg{head: &discoveryv3.DiscoveryRequest{TypeUrl: generate.ListenerType}}); err != nil {
		return err
	}
	var in inMsg
	var resp response
	var refBytes [][]byte
	for {
		if err := recv(&in); err != nil {
			return err
		}
		if err := parseSotW(in.b, &resp); err != nil {
			return err
		}
		ti := typeIndex(resp.typeURL)
		if ti < 0 {
			return fmt.Errorf("unexpected type %q", resp.typeURL)
		}
		c.f.received(c, ti, resp.version, in.b, time.Now())
		// Subscribe to what the clusters and listeners reference before ACKing them, as Envoy does.
		var refs []string
		dep := -1
		switch ti {
		case cds:
			dep = eds
			refBytes = refBytes[:0]
			for _, v := range resp.values {
				if n, ok := edsServiceName(v); ok {
					refBytes = append(refBytes, n)
				}
			}
			refs = c.f.names.strings(refBytes, nil)
		case lds:
			dep = rds
			var err error
			if refs, err = rdsNames(resp.values); err != nil {
				return err
			}
		}
		if dep >= 0 {
			slices.Sort(refs)
			refs = slices.Compact(refs)
			if !slices.Equal(refs, names[dep]) {
				names[dep], namesWire[dep] = refs, encodeNames(3, refs)
				if err := send(sotwACK(XDSTypes[dep], version[dep], nonce[dep], namesWire[dep])); err != nil {
					return err
				}
			}
		}
		nonce[ti], version[ti] = resp.nonce, resp.version
		if err := send(sotwACK(resp.typeURL, resp.version, resp.nonce, namesWire[ti])); err != nil {
			return err
		}
		c.f.pool.put(in.b)
		c.f.acked(c, ti, resp.version, time.Now())
	}
}

// runDelta subscribes and ACKs over an incremental stream.
func (c *client) runDelta(send func(*outMsg) error, recv func(*inMsg) error) error {
	edsOf := map[string]string{}                             // cluster -> its EDS name
	rdsOf := map[string][]string{}                           // listener -> route configurations it loads
	subscribed := [numTypes]map[string]int{eds: {}, rds: {}} // name -> references
	vhdsAsked := map[string]struct{}{}                       // route configurations whose virtual hosts were asked for
	if err := send(&outMsg{head: &discoveryv3.DeltaDiscoveryRequest{TypeUrl: generate.ClusterType}}); err != nil {
		return err
	}
	if err := send(&outMsg{head: &discoveryv3.DeltaDiscoveryRequest{TypeUrl: generate.ListenerType}}); err != nil {
		return err
	}
	var in inMsg
	var resp response
	var names []string
	var refBytes [][]byte
	for {
		if err := recv(&in); err != nil {
			return err
		}
		if err := parseDelta(in.b, &resp); err != nil {
			return err
		}
		ti := typeIndex(resp.typeURL)
		if ti < 0 {
			return fmt.Errorf("unexpected type %q", resp.typeURL)
		}
		c.f.received(c, ti, resp.version, in.b, time.Now())
		if ti == rds && c.f.cfg.OnDemand {
			// Ask for the virtual hosts of the called services of every
			// route configuration, once (Envoy asks as requests arrive).
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: generate.VirtualHostType}
			for _, n := range resp.names {
				if _, ok := vhdsAsked[string(n)]; ok {
					continue
				}
				vhdsAsked[string(n)] = struct{}{}
				for _, h := range CalledHosts(c.idx, c.f.cfg.Services) {
					req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, string(n)+"/"+h)
				}
			}
			if len(req.ResourceNamesSubscribe) > 0 {
				if err := send(&outMsg{head: req}); err != nil {
					return err
				}
			}
		}
		if ti == cds || ti == lds {
			dep := eds
			if ti == lds {
				dep = rds
			}
			sub := subscribed[dep]
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: XDSTypes[dep]}
			ref := func(n string) {
				if sub[n]++; sub[n] == 1 {
					req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
				}
			}
			unref := func(n string) {
				if sub[n]--; sub[n] == 0 {
					delete(sub, n)
					req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
				}
			}
			names = c.f.names.strings(resp.names, names[:0])
			if ti == cds {
				refBytes = refBytes[:0]
				for _, v := range resp.values {
					e, ok := edsServiceName(v)
					if !ok {
						e = nil
					}
					refBytes = append(refBytes, e)
				}
				refs := c.f.names.strings(refBytes, nil)
				for i, n := range names {
					if old, ok := edsOf[n]; ok && old != "" {
						unref(old)
					}
					edsOf[n] = refs[i]
					if refs[i] != "" {
						ref(refs[i])
					}
				}
				for _, n := range resp.removed {
					if old, ok := edsOf[string(n)]; ok {
						if old != "" {
							unref(old)
						}
						delete(edsOf, string(n))
					}
				}
			} else {
				for i, n := range names {
					refs, err := rdsNames(resp.values[i : i+1])
					if err != nil {
						return err
					}
					for _, r := range rdsOf[n] {
						unref(r)
					}
					rdsOf[n] = refs
					for _, r := range refs {
						ref(r)
					}
				}
				for _, n := range resp.removed {
					for _, r := range rdsOf[string(n)] {
						unref(r)
					}
					delete(rdsOf, string(n))
				}
			}
			// A name both unsubscribed and resubscribed in one response
			// (a resource replaced) is neither.
			req.ResourceNamesSubscribe, req.ResourceNamesUnsubscribe = cancelOut(req.ResourceNamesSubscribe, req.ResourceNamesUnsubscribe)
			if len(req.ResourceNamesSubscribe)+len(req.ResourceNamesUnsubscribe) > 0 {
				if err := send(&outMsg{head: req}); err != nil {
					return err
				}
			}
		}
		if err := send(&outMsg{head: &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.typeURL, ResponseNonce: resp.nonce}}); err != nil {
			return err
		}
		c.f.pool.put(in.b)
		c.f.acked(c, ti, resp.version, time.Now())
	}
}

// cancelOut sorts sub and unsub and drops the names in both.
func cancelOut(sub, unsub []string) ([]string, []string) {
	slices.Sort(sub)
	slices.Sort(unsub)
	if len(sub) == 0 || len(unsub) == 0 {
		return sub, unsub
	}
	var s, u []string
	for _, n := range sub {
		if _, found := slices.BinarySearch(unsub, n); !found {
			s = append(s, n)
		}
	}
	for _, n := range unsub {
		if _, found := slices.BinarySearch(sub, n); !found {
			u = append(u, n)
		}
	}
	return s, u
}

// edsServiceName returns the EDS name of a serialized Cluster of type EDS
// (eds_cluster_config.service_name, else the cluster's name). It scans the
// wire format for the three fields it needs instead of decoding the whole
// cluster, to keep the simulated proxies' CPU out of the measurement.
func edsServiceName(b []byte) ([]byte, bool) {
	var name, svc []byte
	var typ uint64
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == 1 && wt == protowire.BytesType:
			name, n = protowire.ConsumeBytes(b)
		case num == 2 && wt == protowire.VarintType:
			typ, n = protowire.ConsumeVarint(b)
		case num == 3 && wt == protowire.BytesType:
			var cfg []byte
			cfg, n = protowire.ConsumeBytes(b)
			for len(cfg) > 0 {
				num, wt, m := protowire.ConsumeTag(cfg)
				if m < 0 {
					return nil, false
				}
				cfg = cfg[m:]
				if num == 2 && wt == protowire.BytesType {
					svc, m = protowire.ConsumeBytes(cfg)
				} else {
					m = protowire.ConsumeFieldValue(num, wt, cfg)
				}
				if m < 0 {
					return nil, false
				}
				cfg = cfg[m:]
			}
		default:
			n = protowire.ConsumeFieldValue(num, wt, b)
		}
		if n < 0 {
			return nil, false
		}
		b = b[n:]
	}
	const edsType = 3 // envoy.config.cluster.v3.Cluster.DiscoveryType EDS
	if typ != edsType {
		return nil, false
	}
	if len(svc) > 0 {
		return svc, true
	}
	return name, len(name) > 0
}

var errNotListener = errors.New("resource is not a Listener")

// rdsNames returns the route configurations the listeners (serialized)
// HTTP connection managers load over RDS. Listeners are few and small, so
// they are decoded in full.
func rdsNames(rs [][]byte) ([]string, error) {
	var out []string
	for _, r := range rs {
		var l listenerv3.Listener
		if err := proto.Unmarshal(r, &l); err != nil {
			return nil, fmt.Errorf("%w: %v", errNotListener, err)
		}
		chains := l.FilterChains
		if l.DefaultFilterChain != nil {
			chains = append(chains, l.DefaultFilterChain)
		}
		for _, fc := range chains {
			for _, f := range fc.Filters {
				tc := f.GetTypedConfig()
				if tc == nil || !tc.MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
					continue
				}
				var hcm hcmv3.HttpConnectionManager
				if err := tc.UnmarshalTo(&hcm); err != nil {
					return nil, fmt.Errorf("listener %s: %w", l.Name, err)
				}
				if n := hcm.GetRds().GetRouteConfigName(); n != "" {
					out = append(out, n)
				}
			}
		}
	}
	return out, nil
}
