// Package dataplane wires mast-proxy together: the xDS client feeds
// accepted configuration into one immutable snapshot, which is turned into
// clusters (with pools that survive updates), the router's config (swapped
// atomically; requests in flight keep the one they started with) and bound
// listeners. It also serves the admin interface and drains on shutdown.
package dataplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/admin"
	"github.com/mast-mesh/mast/internal/proxy/agent/probe"
	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/httpproxy"
	"github.com/mast-mesh/mast/internal/proxy/listener"
	"github.com/mast-mesh/mast/internal/proxy/overload"
	"github.com/mast-mesh/mast/internal/proxy/pageout"
	"github.com/mast-mesh/mast/internal/proxy/tcpproxy"
	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsclient"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdswire"
	"github.com/mast-mesh/mast/internal/telemetry/reporter"
	"github.com/mast-mesh/mast/internal/telemetry/spans"
)

// Config configures the data plane.
type Config struct {
	// XDSAddress is the control plane's ADS address (host:port).
	XDSAddress string
	// ReadinessProbe, when set, probes the local application and reports
	// its health changes to the control plane over the ADS stream (a VM
	// auto-registered from a WorkloadGroup with a probe).
	ReadinessProbe *probe.Checker
	Node           *xdswire.Node
	// AdminAddr is the admin listener (default 127.0.0.1:15000).
	AdminAddr string
	// DrainPeriod bounds graceful shutdown (default 5s).
	DrainPeriod time.Duration
	Logger      *slog.Logger
	// LogLevel, if set, is changed by the admin /logging endpoint.
	LogLevel *slog.LevelVar
	// XDSBackoffMax bounds reconnect delays (default 30s).
	XDSBackoffMax time.Duration
	// XDSDelta uses the incremental xDS protocol instead of state of the world.
	XDSDelta bool
	// XDSTLS secures the xDS connection (the agent's mTLS, following its
	// certificate's rotation); nil is plaintext.
	XDSTLS *tls.Config
	// XDSMaxRecvMsgSize bounds one xDS response (0: xdsclient's 64 MiB).
	XDSMaxRecvMsgSize int
	// Telemetry records standard metrics and access logs and does the
	// metadata exchange; nil turns telemetry off.
	Telemetry *reporter.Reporter
	// Tracing configures the span reporters of connection managers that
	// trace (the proxy supplies the way to their collector clusters).
	Tracing spans.Options
	// StatsAddr serves /stats/prometheus (Istio's 15090) and MergedAddr
	// the application's metrics merged with the proxy's (15020, also
	// /healthz/ready); "" serves neither. AppMetricsURL is where the
	// application's metrics are scraped for the merge.
	StatsAddr, MergedAddr, AppMetricsURL string
	// AppProbers are the application probes served on MergedAddr under
	// /app-health/ (Istio's ISTIO_KUBE_APP_PROBERS, see ParseAppProbers).
	AppProbers map[string]AppProber
	// StatsBestEffort makes a busy stats port a warning, not an error.
	StatsBestEffort bool
	// Secrets provides the workload certificate and trust bundle for TLS
	// transport sockets (the agent); nil runs without mTLS.
	Secrets tlsconfig.Source
	// Credentials serves credentialName references (Gateway servers,
	// DestinationRule client certificates); nil: none.
	Credentials tlsconfig.Credentials
	// ReleaseMemoryAfter is the quiet period after the last xDS update
	// after which the proxy collects garbage and returns free memory to the
	// OS (debug.FreeOSMemory): decoding a large push leaves megabytes of
	// garbage that the runtime would otherwise keep as heap headroom. One
	// collection per quiet period, not per update. Default 1s; negative
	// disables it.
	ReleaseMemoryAfter time.Duration
	// PageOutExecutable makes that release also page out the resident pages
	// of the proxy's own executable (package pageout): ~14 MB touched at
	// start-up, of which an idle proxy needs ~2 MB; what it touches again
	// comes back from the page cache.
	PageOutExecutable bool
	// LegacyHTTP2Server serves downstream HTTP/2 with x/net's
	// net/http-shaped server instead of the proxy's own (h2server).
	LegacyHTTP2Server bool
	// LegacyHTTP2Client sends upstream HTTP/2 through x/net's Transport
	// instead of the proxy's own client (h2client).
	LegacyHTTP2Client bool
	// Overload configures the overload manager (connection cap, heap
	// watermarks).
	Overload overload.Config
}

// releaseMemory returns free heap to the OS and, when configured, the
// executable's pages (after a quiet period following xDS updates).
func (p *Proxy) releaseMemory() {
	debug.FreeOSMemory()
	if p.cfg.PageOutExecutable {
		if res, err := pageout.Executable(); err != nil {
			p.log.Debug("paging out the executable", "error", err)
		} else {
			p.log.Debug("paged out the executable", "mappings", res.Mappings, "bytes", res.Bytes)
		}
	}
}

// Proxy is a running data plane.
type Proxy struct {
	cfg       Config
	started   time.Time
	log       *slog.Logger
	mu        sync.Mutex // serializes Apply (the xDS client is single-threaded; admin reads take it too)
	snap      *xdsparse.Snapshot
	routing   atomic.Pointer[httpproxy.Config]
	upstreams *upstream.Manager
	tracers   *spans.Registry
	http      *httpproxy.Server
	tcp       *tcpproxy.Proxy
	listeners *listener.Manager
	overload  *overload.Manager
	xds       *xdsclient.Client
	grpc      *grpcPool // connections of filters (the Mixer client)
	ldsDone   atomic.Bool
	cdsDone   atomic.Bool
	quit      chan struct{}
	quitOnce  sync.Once
	adminAddr atomic.Pointer[string]
	// active holds the listeners handed to the listener manager.
	active map[string]*xdsparse.Listener
	// release is the pending post-update memory release (guarded by mu).
	release *time.Timer
}

// warmListeners returns the listeners to run: a listener whose route
// configuration has not arrived yet is warming; until it is warm the
// previous version of it (if any) keeps serving, as in Envoy.
func (p *Proxy) warmListeners(s *xdsparse.Snapshot) map[string]*xdsparse.Listener {
	out := make(map[string]*xdsparse.Listener, len(s.Listeners))
	for name, l := range s.Listeners {
		if listenerWarm(l, s) {
			out[name] = l
		} else if old, ok := p.active[name]; ok {
			out[name] = old
		}
	}
	p.active = out
	return out
}

func listenerWarm(l *xdsparse.Listener, s *xdsparse.Snapshot) bool {
	for _, c := range append(l.Chains[:len(l.Chains):len(l.Chains)], l.Default) {
		if c != nil && c.HTTP != nil && c.HTTP.RDSName != "" && s.Routes[c.HTTP.RDSName] == nil {
			return false
		}
	}
	return true
}

// New builds a data plane; call Run.
func New(cfg Config) *Proxy {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = "127.0.0.1:15000"
	}
	if cfg.DrainPeriod <= 0 {
		cfg.DrainPeriod = 5 * time.Second
	}
	if cfg.ReleaseMemoryAfter == 0 {
		cfg.ReleaseMemoryAfter = time.Second
	}
	p := &Proxy{cfg: cfg, started: time.Now(), log: cfg.Logger, snap: xdsparse.EmptySnapshot(), quit: make(chan struct{})}
	p.routing.Store(&httpproxy.Config{})
	p.upstreams = upstream.NewManager(cfg.Logger.With("component", "upstream"))
	tlsb := tlsconfig.NewBuilder(cfg.Secrets, nil)
	tlsb.Log = cfg.Logger.With("component", "tls")
	tlsb.Credentials = cfg.Credentials
	p.upstreams.TLS = tlsb
	p.upstreams.LegacyH2 = cfg.LegacyHTTP2Client
	p.http = httpproxy.NewServer(&p.routing, p.upstreams, cfg.Logger.With("component", "http"))
	p.http.Telemetry = cfg.Telemetry
	p.http.LegacyH2 = cfg.LegacyHTTP2Server
	tcfg := cfg.Tracing
	tcfg.Dial = p.dialCluster
	if tcfg.Logger == nil {
		tcfg.Logger = cfg.Logger.With("component", "tracing")
	}
	p.tracers = spans.NewRegistry(tcfg)
	p.http.Tracers = p.tracers
	p.grpc = &grpcPool{tls: cfg.XDSTLS}
	p.http.Services = &filter.Services{RPC: p.grpc.rpc, Logger: cfg.Logger.With("component", "filters"),
		ClusterHTTP: p.clusterHTTP, ClusterDial: p.clusterDial}
	p.tcp = tcpproxy.New(func() map[string]*upstream.Cluster { return p.routing.Load().Clusters }, cfg.Logger.With("component", "tcp"))
	p.tcp.OriginalDstHost = p.upstreams.OriginalDstHost
	p.tcp.Telemetry = cfg.Telemetry
	p.listeners = listener.NewManager(p.http, p.tcp, cfg.Logger.With("component", "listener"))
	p.listeners.TLS = tlsb
	p.overload = overload.New(cfg.Overload)
	p.listeners.Overload = p.overload
	p.http.Overload = p.overload
	p.xds = xdsclient.New(xdsclient.Config{Address: cfg.XDSAddress, Node: cfg.Node, Logger: cfg.Logger.With("component", "xds"),
		BackoffMax: cfg.XDSBackoffMax, Delta: cfg.XDSDelta, TLS: cfg.XDSTLS, MaxRecvMsgSize: cfg.XDSMaxRecvMsgSize}, p)
	if cfg.XDSDelta {
		p.http.OnDemand = func(ctx context.Context, routeConfig, host string) error {
			return p.xds.OnDemand(ctx, routeConfig+"/"+host)
		}
	}
	return p
}

// Apply implements xdsclient.Handler: validate, keep the last good, publish.
func (p *Proxy) Apply(typeURL, version string, res []*anypb.Any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	next, perr := xdsparse.Apply(p.snap, typeURL, version, res)
	p.snap = next
	clusters := p.upstreams.Update(next.Clusters, next.Endpoints)
	p.routing.Store(&httpproxy.Config{Routes: next.Routes, Clusters: clusters})
	var lerr error
	if typeURL == xdsparse.ListenerType || typeURL == xdsparse.RouteType {
		lerr = p.listeners.Update(p.warmListeners(next))
	}
	if typeURL == xdsparse.ListenerType {
		p.ldsDone.Store(true)
		p.applyMetricsConfig(next.Listeners)
	}
	if typeURL == xdsparse.ClusterType {
		p.cdsDone.Store(true)
	}
	if d := p.cfg.ReleaseMemoryAfter; d > 0 {
		if p.release == nil {
			p.release = time.AfterFunc(d, p.releaseMemory)
		} else {
			p.release.Reset(d)
		}
	}
	if perr != nil || lerr != nil {
		return errors.Join(perr, lerr)
	}
	return nil
}

// Names implements xdsclient.Handler.
func (p *Proxy) Names(typeURL string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if typeURL == xdsparse.RouteType {
		return p.snap.RouteNames()
	}
	return p.snap.EndpointNames()
}

// Ready reports whether the first listeners and clusters were applied,
// every listener is warm (its route configuration arrived) and every bound
// listener accepts connections.
func (p *Proxy) Ready() bool {
	if !p.ldsDone.Load() || !p.cdsDone.Load() {
		return false
	}
	if ok, _ := p.listeners.Healthy(); !ok {
		return false
	}
	s := p.Snapshot()
	for _, l := range s.Listeners {
		if !listenerWarm(l, s) {
			return false
		}
	}
	return true
}

// Snapshot returns the current accepted configuration.
func (p *Proxy) Snapshot() *xdsparse.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap
}

// Overload returns the overload manager (its counters and state).
func (p *Proxy) Overload() *overload.Manager { return p.overload }

// Clusters returns the running clusters.
func (p *Proxy) Clusters() map[string]*upstream.Cluster { return p.routing.Load().Clusters }

// Listeners returns the bound listeners.
func (p *Proxy) Listeners() []listener.Info { return p.listeners.Listeners() }

// HTTPStats returns the HTTP counters.
func (p *Proxy) HTTPStats() *httpproxy.Stats { return p.http.Stats }

// XDSState reports the xDS connection and ACK/NACK counts.
func (p *Proxy) XDSState() (connected bool, acks, nacks int64) {
	a, n := p.xds.Counts()
	return p.xds.Connected(), a, n
}

// Quit asks Run to shut down (admin /quitquitquit).
func (p *Proxy) Quit() { p.quitOnce.Do(func() { close(p.quit) }) }

// AdminAddr returns the bound admin address once Run started it.
func (p *Proxy) AdminAddr() string {
	if a := p.adminAddr.Load(); a != nil {
		return *a
	}
	return ""
}

// Run serves until ctx ends or Quit is called, then drains.
func (p *Proxy) Run(ctx context.Context) error {
	ln, err := admin.Listen(p.cfg.AdminAddr)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	p.adminAddr.Store(&addr)
	p.log.Info("admin listening", "addr", addr)
	asrv := &http.Server{Handler: admin.Handler(p, p.cfg.LogLevel), ReadHeaderTimeout: 10 * time.Second}
	go asrv.Serve(ln)
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{p.cfg.StatsAddr, p.statsHandler()}, {p.cfg.MergedAddr, p.mergedHandler()}} {
		if s.addr == "" {
			continue
		}
		stop, bound, err := serveOptional(s.addr, s.h)
		if err != nil && p.cfg.StatsBestEffort {
			p.log.Warn("stats not served", "addr", s.addr, "error", err)
			continue
		}
		if err != nil {
			ln.Close()
			return fmt.Errorf("stats: listen %s: %w", s.addr, err)
		}
		p.log.Info("stats listening", "addr", bound)
		defer stop()
	}
	if p.cfg.Telemetry != nil {
		defer p.cfg.Telemetry.Close()
	}
	defer func() {
		// Queued spans get one bounded try; a dead collector costs at most this.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p.tracers.Close(ctx)
	}()
	xctx, xcancel := context.WithCancel(context.Background())
	xdone := make(chan struct{})
	go func() { p.xds.Run(xctx); close(xdone) }()
	go p.overload.Run(xctx)
	if rp := p.cfg.ReadinessProbe; rp != nil {
		go rp.Run(xctx, func(e probe.Event) { p.xds.ReportHealth(e.Healthy, e.Message) })
	}
	select {
	case <-ctx.Done():
	case <-p.quit:
	}
	p.log.Info("draining", "period", p.cfg.DrainPeriod)
	xcancel()
	<-xdone
	p.mu.Lock()
	if p.release != nil {
		p.release.Stop()
	}
	p.mu.Unlock()
	p.listeners.Shutdown(p.cfg.DrainPeriod)
	p.upstreams.Close()
	p.grpc.close()
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	asrv.Shutdown(sctx)
	return nil
}
