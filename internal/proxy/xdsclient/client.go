// Package xdsclient is mast-proxy's xDS v3 client: one aggregated (ADS)
// state-of-the-world stream that subscribes to listeners and clusters by
// wildcard and then to the route configurations and endpoints they name,
// ACKs what the handler accepts, NACKs (naming resource and reason) what it
// rejects, and reconnects with jittered exponential backoff. The handler keeps
// the last good configuration, so the proxy serves on while the control plane
// is away.
package xdsclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// Handler consumes responses. Apply returns nil to ACK or an error (its text
// becomes the NACK's error_detail). Names returns the resource names to
// subscribe to for a non-wildcard type (routes, endpoints) given what has been
// accepted so far.
type Handler interface {
	Apply(typeURL, version string, resources []*anypb.Any) error
	Names(typeURL string) []string
}

// Config configures a Client.
type Config struct {
	// Address is the control plane's host:port.
	Address string
	// TLS secures the connection (mTLS to mastd's 15012 with the agent's
	// certificate, which its callbacks follow as it rotates); nil means
	// plaintext (a loopback 15010).
	TLS *tls.Config
	// MaxRecvMsgSize bounds one response (default DefaultMaxRecvMsgSize);
	// mastd's --xds-max-send-size must not exceed it.
	MaxRecvMsgSize int
	Node           *xdswire.Node
	Logger         *slog.Logger
	// BackoffBase and BackoffMax bound reconnect delays (defaults 250ms, 30s).
	BackoffBase, BackoffMax time.Duration
	// Delta uses the incremental protocol (DeltaAggregatedResources).
	Delta bool
}

// Client runs the ADS stream.
type Client struct {
	cfg       Config
	h         Handler
	log       *slog.Logger
	connected atomic.Bool
	acks      atomic.Int64
	nacks     atomic.Int64
	// per-type state survives reconnects: last accepted version and names.
	state map[string]*typeState
	delta map[string]*deltaState
	od    *onDemand
	// health is the workload's latest readiness report (ReportHealth).
	health health
}

type typeState struct {
	version  string // last accepted
	nonce    string
	names    []string // subscribed (nil for wildcard)
	sent     bool
	nackVer  string
	nackRuns int
}

// Order is the subscription order: clusters before listeners, then the
// resources they reference (Envoy's order, so nothing is used before it exists).
var order = []string{xdsparse.ClusterType, xdsparse.ListenerType, xdsparse.EndpointType, xdsparse.RouteType}

// DefaultMaxRecvMsgSize is the default bound of one xDS response: 64 MiB,
// far above gRPC's 4 MiB, which a 12,000-service mesh's CDS exceeds.
const DefaultMaxRecvMsgSize = 64 << 20

// New returns a client; call Run.
func New(cfg Config, h Handler) *Client {
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 250 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxRecvMsgSize <= 0 {
		cfg.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	c := &Client{cfg: cfg, h: h, log: cfg.Logger, state: map[string]*typeState{}, delta: map[string]*deltaState{}, od: newOnDemand()}
	for _, t := range order {
		c.state[t] = &typeState{}
		c.delta[t] = &deltaState{resources: map[string]*anypb.Any{}, versions: map[string]string{}}
	}
	c.delta[xdsparse.VirtualHostType] = &deltaState{resources: map[string]*anypb.Any{}, versions: map[string]string{}}
	return c
}

// Connected reports whether a stream is currently established.
func (c *Client) Connected() bool { return c.connected.Load() }

// Counts returns how many ACKs and NACKs were sent.
func (c *Client) Counts() (acks, nacks int64) { return c.acks.Load(), c.nacks.Load() }

// Run connects and serves until ctx is done, reconnecting on failure.
func (c *Client) Run(ctx context.Context) error {
	// mast-proxy's own gRPC client (no service config, no resolver
	// beyond DNS); a keepalive PING after 30 s without a frame finds a
	// dead connection (mastd allows one every 15 s).
	conn, err := rpc.Dial(c.cfg.Address, rpc.Options{TLS: c.cfg.TLS, MaxRecvMsgSize: c.cfg.MaxRecvMsgSize,
		KeepaliveTime: 30 * time.Second, KeepaliveTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("xds client: %s: %w", c.cfg.Address, err)
	}
	defer conn.Close()
	attempt := 0
	for {
		var healthy bool
		var err error
		if c.cfg.Delta {
			healthy, err = c.deltaStream(ctx, conn)
		} else {
			healthy, err = c.stream(ctx, conn)
		}
		if ctx.Err() != nil {
			return nil
		}
		tooLarge := rpc.CodeOf(err) == rpc.ResourceExhausted
		if healthy && !tooLarge {
			attempt = 0
		}
		d := backoff(c.cfg.BackoffBase, c.cfg.BackoffMax, attempt)
		attempt++
		if tooLarge {
			// Not a transient failure: the same response will come again.
			// Back off like any failure (no tight loop) and say what to change.
			c.log.Error("xds response refused: larger than this proxy's receive limit; keeping last good config. Raise --xds-max-recv-size (and keep mastd's --xds-max-send-size at most that), or scope the proxy's config with a Sidecar resource",
				"addr", c.cfg.Address, "max_recv_bytes", c.cfg.MaxRecvMsgSize, "err", err, "retry_in", d)
		} else {
			c.log.Warn("xds stream ended; keeping last good config", "addr", c.cfg.Address, "err", err, "retry_in", d)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// backoff returns a full-jitter exponential delay for attempt.
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}

// stream runs one ADS stream; healthy reports whether any response arrived.
func (c *Client) stream(ctx context.Context, conn rpc.Conn) (healthy bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := openStream(ctx, conn, adsSotW)
	if err != nil {
		return false, fmt.Errorf("open stream: %w", err)
	}
	send, sendErr := startSender(ctx, cancel, func(r *xdswire.Request) error { return sendMsg(st, r.Marshal) })
	first := true
	for _, t := range order {
		ts := c.state[t]
		ts.nonce, ts.sent = "", false
		if t == xdsparse.EndpointType || t == xdsparse.RouteType {
			ts.names = c.h.Names(t)
			if len(ts.names) == 0 {
				continue
			}
		}
		send(c.request(t, ts, first, nil))
		first = false
		ts.sent = true
	}
	c.connected.Store(true)
	defer c.connected.Store(false)
	// Cancelled first, so that a report blocked on this stream's full
	// queue gives up before detaching waits for it.
	detach := c.health.attach(send, nil)
	defer func() { cancel(); detach() }()
	for {
		resp, err := recvMsg(st, sendErr, xdswire.DecodeResponse)
		if err != nil {
			return healthy, err
		}
		if !healthy {
			c.log.Info("xds stream established", "addr", c.cfg.Address)
		}
		healthy = true
		c.handle(ctx, resp, send)
	}
}

func (c *Client) request(t string, ts *typeState, withNode bool, errDetail error) *xdswire.Request {
	r := &xdswire.Request{TypeURL: t, VersionInfo: ts.version, ResponseNonce: ts.nonce, ResourceNames: ts.names}
	if withNode {
		r.Node = c.cfg.Node
	}
	if errDetail != nil {
		r.ErrorDetail = &xdswire.Status{Code: int32(rpc.InvalidArgument), Message: errDetail.Error()}
	}
	return r
}

func (c *Client) handle(ctx context.Context, resp *xdswire.Response, send func(*xdswire.Request)) {
	t := resp.TypeURL
	ts, ok := c.state[t]
	if !ok {
		c.log.Warn("xds: response of unknown type ignored", "type", t)
		return
	}
	ts.nonce = resp.Nonce
	err := c.h.Apply(t, resp.VersionInfo, resp.Resources)
	// Subscribe to what the new listeners/clusters reference before ACKing
	// them, as Envoy does while warming.
	if t == xdsparse.ListenerType || t == xdsparse.ClusterType {
		dep := xdsparse.RouteType
		if t == xdsparse.ClusterType {
			dep = xdsparse.EndpointType
		}
		names := c.h.Names(dep)
		ds := c.state[dep]
		if !slices.Equal(names, ds.names) || (!ds.sent && len(names) > 0) {
			ds.names = names
			ds.sent = true
			send(c.request(dep, ds, false, nil))
		}
	}
	if err == nil {
		ts.version = resp.VersionInfo
		ts.nackVer, ts.nackRuns = "", 0
		c.acks.Add(1)
		send(c.request(t, ts, false, nil))
		return
	}
	c.nacks.Add(1)
	c.log.Warn("xds: NACK", "type", t, "version", resp.VersionInfo, "err", err)
	req := c.request(t, ts, false, err)
	if ts.nackVer == resp.VersionInfo {
		// The server re-sent what we just rejected; slow the exchange down so
		// a server that answers every NACK at once does not spin.
		ts.nackRuns++
		d := backoff(c.cfg.BackoffBase, c.cfg.BackoffMax, ts.nackRuns)
		go func() {
			select {
			case <-ctx.Done():
			case <-time.After(d):
				send(req)
			}
		}()
		return
	}
	ts.nackVer, ts.nackRuns = resp.VersionInfo, 0
	send(req)
}

// startSender sends requests from one goroutine, so the receive loop never
// blocks on a slow write. A failed send is reported on the returned channel
// and cancels the stream; send gives up when the stream's context ends.
func startSender[T any](ctx context.Context, cancel context.CancelFunc, sendFn func(*T) error) (send func(*T), sendErr <-chan error) {
	ch := make(chan *T, 16)
	errc := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-ch:
				if err := sendFn(r); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}
	}()
	return func(r *T) {
		select {
		case ch <- r:
		case <-ctx.Done():
		}
	}, errc
}
