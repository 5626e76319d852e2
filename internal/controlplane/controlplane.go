// Package controlplane assembles mastd: the configuration store (Galley), the
// service registry, the push pipeline and the ADS server (Pilot), and the
// monitoring endpoints. main parses flags into Config and calls Run.
package controlplane

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/mast-mesh/mast/internal/adminguard"
	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/store"
	"github.com/mast-mesh/mast/internal/dashboard"
	"github.com/mast-mesh/mast/internal/kube/autoregister"
	"github.com/mast-mesh/mast/internal/pilot/ads"
	"github.com/mast-mesh/mast/internal/pilot/envoyfilter"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/jwks"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/pilot/push"
	"github.com/mast-mesh/mast/internal/pilot/workloadhealth"
	"github.com/mast-mesh/mast/internal/ratelimit"
	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/aggregate"
	kuberegistry "github.com/mast-mesh/mast/internal/registry/kube"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

// DefaultDebounceQuiet is mastd's default quiet period before a push
// (--debounce-after, Istio's PILOT_DEBOUNCE_AFTER default).
const DefaultDebounceQuiet = 100 * time.Millisecond

// Config is everything mastd needs, parsed from flags in main.
type Config struct {
	ConfigDir      string // watched directory tree of Istio YAML
	XDSAddr        string // plaintext ADS, e.g. 127.0.0.1:15010
	MonitoringAddr string // metrics and debug, e.g. 127.0.0.1:15014
	// CADir, when set, runs the CA with its state there and serves xDS and
	// the certificate service over TLS on SecureXDSAddr (Istio's 15012).
	CADir         string
	SecureXDSAddr string
	// PluginCADir holds Istio's cacerts files (ca-cert.pem, ca-key.pem,
	// cert-chain.pem, root-cert.pem); when present they sign.
	PluginCADir string
	// Webhook serves the admission webhooks.
	Webhook WebhookConfig
	// MaxCertTTL caps workload certificate lifetimes (0: the CA's 24h).
	MaxCertTTL    time.Duration
	Mesh          model.MeshConfig
	DebounceQuiet time.Duration // Istio's PILOT_DEBOUNCE_AFTER, DefaultDebounceQuiet
	DebounceMax   time.Duration // Istio's PILOT_DEBOUNCE_MAX, 10s
	// PushThrottle bounds concurrent per-proxy generation (Istio's
	// PILOT_PUSH_THROTTLE); 0 means ads.DefaultPushThrottle (100).
	PushThrottle int
	// KeepaliveTimeout is how long an xDS client may take to answer the
	// server's keepalive ping before its connection is closed (0: 10s).
	KeepaliveTimeout time.Duration
	// DisableXDSCache generates every resource for every proxy on every
	// push, without generate.Cache (Istio's PILOT_ENABLE_XDS_CACHE=false).
	DisableXDSCache bool
	// NoIdleGC leaves garbage collection to the Go runtime alone instead
	// of starting a cycle once a push has reached every proxy, when the
	// next push could reach the GC trigger (push.IdleGC).
	NoIdleGC bool
	// XDSCacheSelfCheck, when positive, regenerates one in N cache hits
	// without the cache and logs an ERROR when they differ (debug mode).
	XDSCacheSelfCheck int
	// DebugTokenFile holds the bearer token that /debug endpoints which
	// change state (rotate-root) require. Empty: CADir/debug-token when the
	// CA runs, created (mode 0600) on first start; without either, those
	// endpoints refuse every request.
	DebugTokenFile string
	// MaxStreamsPerConn bounds concurrent gRPC streams on one xDS
	// connection (a proxy needs one ADS stream); 0 means 100.
	MaxStreamsPerConn uint32
	// XDSSendTimeout closes an ADS stream whose client takes longer than
	// this to take one response (Istio's PILOT_XDS_SEND_TIMEOUT): a
	// stalled client then holds its response's memory only that long.
	// 0: never (mastd's flag defaults to 30s).
	XDSSendTimeout time.Duration
	// MaxConnsPerNode bounds open ADS streams per node ID (0: 8).
	MaxConnsPerNode int
	// XDSMaxSendSize bounds one xDS response; it must not exceed the
	// proxies' --xds-max-recv-size (both default to 64 MiB). 0: 64 MiB.
	XDSMaxSendSize int
	// XDSWriteBuffer is the size of the buffer an xDS connection's writes
	// are gathered in before each system call, from a pool shared by the
	// connections and held while one writes (0: ads.DefaultWriteBuffer).
	XDSWriteBuffer int
	// DebugAdminIdentities are SPIFFE IDs whose client certificate (issued
	// by the CA, over TLS on the monitoring port) authenticates the
	// state-changing /debug endpoints instead of the token (istiod's admin
	// identities). Needs CADir.
	DebugAdminIdentities []string
	// DebugHosts are names accepted in the Host header of /debug/*
	// besides IP literals and localhost (DNS rebinding defence).
	DebugHosts []string
	// JWKS configures the fetcher of RequestAuthentication jwksUri key
	// sets (Istio's defaults when zero); tests shorten its refresh.
	JWKS jwks.Config
	// Broker configures the Open Service Broker (off unless Enabled).
	Broker BrokerConfig
	// Mixer configures Istio's Mixer (off unless Enabled).
	Mixer MixerConfig
	// Registries are the service registries besides ServiceEntries
	// (Kubernetes, Consul, Eureka), in priority order: a hostname present
	// in several belongs to ServiceEntry config first, then to the first of
	// these that has it (docs/registries.md).
	Registries []registry.Watcher
	// Dashboard configures the web UI on the monitoring port (/ui/).
	Dashboard DashboardConfig
	// Kube, when set, reads Istio configuration from the cluster's custom
	// resources too and writes their status (--registry kubernetes).
	Kube *KubeConfig
	// RateLimit configures the rate-limit service (off unless Enabled).
	RateLimit RateLimitConfig
	Logger    *slog.Logger
	// Ready, when set, receives the bound addresses once both servers listen.
	Ready func(xds, monitoring net.Addr)
}

// Run serves until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if cfg.MaxStreamsPerConn == 0 {
		cfg.MaxStreamsPerConn = 100
	}
	if cfg.KeepaliveTimeout == 0 {
		cfg.KeepaliveTimeout = 10 * time.Second
	}
	if cfg.XDSMaxSendSize == 0 {
		cfg.XDSMaxSendSize = 64 << 20
	}
	if cfg.XDSWriteBuffer == 0 {
		cfg.XDSWriteBuffer = ads.DefaultWriteBuffer
	}
	// The CA is opened first: the ADS server binds TLS callers' nodes to
	// the identities it verifies.
	var authority *ca.CA
	var kubeClient kubernetes.Interface
	if cfg.CADir != "" {
		var err error
		caCfg := ca.Config{Dir: cfg.CADir, TrustDomain: cfg.Mesh.TrustDomain, MaxTTL: cfg.MaxCertTTL, Logger: log.With("component", "ca")}
		if cfg.MaxCertTTL > 0 && cfg.MaxCertTTL < ca.DefaultLeafTTL {
			caCfg.DefaultTTL = cfg.MaxCertTTL
		}
		if kubeClient, err = kubeCA(cfg, &caCfg); err != nil {
			return err
		}
		authority, err = ca.New(caCfg)
		if err != nil {
			return fmt.Errorf("ca: %w", err)
		}
	}
	gen := generate.Generate
	var idle []func() // told that a push's fan-out is complete, in order
	if !cfg.DisableXDSCache {
		cache := generate.NewCache(generate.CacheConfig{SelfCheck: cfg.XDSCacheSelfCheck, Logger: log.With("component", "xdscache")})
		gen = cache.Generate
		// The cache sweeps its unused entries after a fan-out rather
		// than at the next push's start (and before IdleGC's cycle,
		// which then frees them).
		idle = append(idle, cache.Idle)
	}
	// EnvoyFilters patch clones of the (cached, shared) output per proxy.
	gen = envoyfilter.New(envoyfilter.Config{Logger: log.With("component", "envoyfilter")}).Wrap(gen)
	// WorkloadGroup auto-registration, on Kubernetes (set below, before
	// any stream is served).
	var autoReg atomic.Pointer[autoregister.Controller]
	// Proxies' health reports take unhealthy WorkloadEntries out of the
	// configuration the pipeline sees (refresh is set once it exists).
	var sources configSources
	var idleGC *push.IdleGC
	if !cfg.NoIdleGC {
		idleGC = push.NewIdleGC()
	}
	health := &healthReports{table: &workloadhealth.Table{}, sources: &sources, refresh: func() {}, log: log.With("component", "workloadhealth")}
	sources.health = health.table
	adsCfg := ads.Config{
		Generate:        gen,
		ClusterHost:     generate.ClusterHost,
		RouteScope:      generate.RouteScope,
		Logger:          log.With("component", "ads"),
		Metrics:         reg,
		PushThrottle:    cfg.PushThrottle,
		Authorize:       xdsAuthorizer(authority),
		MaxConnsPerNode: cfg.MaxConnsPerNode,
		SendTimeout:     cfg.XDSSendTimeout,
		Connected: func(ctx context.Context, p *model.Proxy) {
			if a := autoReg.Load(); a != nil {
				a.Connected(ctx, p, tlsPeer(ctx))
			}
		},
		Disconnected: func(p *model.Proxy) {
			health.disconnected(p)
			if a := autoReg.Load(); a != nil {
				a.Disconnected(p)
			}
		},
		Health: health.report,
	}
	if idleGC != nil {
		idle = append(idle, idleGC.Idle)
	}
	if len(idle) > 0 {
		adsCfg.Idle = func() {
			for _, f := range idle {
				f()
			}
		}
	}
	adsServer := ads.New(adsCfg)

	var mix *mixerServer
	cfg.Mesh.MixerQuotaPrefetch = cfg.Mixer.QuotaPrefetch
	if cfg.Mixer.Enabled {
		if authority == nil {
			return fmt.Errorf("mixer: needs the CA (--ca-dir): proxies call it over mTLS with their mesh identities")
		}
		mix = newMixer(cfg, log.With("component", "mixer"))
		if cfg.Mesh.MixerCheckServer == "" {
			cfg.Mesh.MixerCheckServer = cfg.Mixer.Addr
		}
		if cfg.Mesh.MixerReportServer == "" {
			cfg.Mesh.MixerReportServer = cfg.Mesh.MixerCheckServer
		}
	}
	var rls *rateLimitServer
	if cfg.RateLimit.Enabled {
		var err error
		if rls, err = newRateLimit(cfg.RateLimit, log.With("component", "ratelimit")); err != nil {
			return err
		}
		defer rls.stop()
		cfg.Mesh.RateLimitService = cfg.RateLimit.Advertise
		if cfg.Mesh.RateLimitService == "" {
			cfg.Mesh.RateLimitService = rls.lis.Addr().String()
		}
	}
	p := &pipeline{mesh: cfg.Mesh, ads: adsServer, log: log.With("component", "push"), events: newConfigEvents(reg), watchers: cfg.Registries}
	if rls != nil {
		p.rateLimit = rls.svc
	}
	p.mixer = mix
	p.ca = authority
	deb := push.NewDebouncer(push.Config{QuietPeriod: cfg.DebounceQuiet, MaxDelay: cfg.DebounceMax, Push: p.push})
	jcfg := cfg.JWKS
	jcfg.Logger = log.With("component", "jwks")
	jcfg.OnChange = func() { deb.Enqueue(&model.PushRequest{Full: true, Reason: "jwks"}) }
	p.jwks = jwks.New(jcfg)

	health.refresh = func() {
		sources.update(nil, nil, func(all *config.Snapshot) {
			if req := p.configChanged(all, map[config.Kind]struct{}{config.WorkloadEntry: {}}); req != nil {
				req.Reason = "workload health"
				deb.Enqueue(req)
			}
		})
	}
	var kubeCtl *kubeControl
	if cfg.Kube != nil {
		if cfg.ConfigDir == "" { // the CRDs are the configuration
			dir, err := os.MkdirTemp("", "mastd-config-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			cfg.ConfigDir = dir
		}
		var kreg *kuberegistry.Registry
		for _, w := range cfg.Registries {
			if r, ok := w.(*kuberegistry.Registry); ok {
				kreg = r
			}
		}
		dyn, err := dynamic.NewForConfig(cfg.Kube.Rest)
		if err != nil {
			return fmt.Errorf("kubernetes dynamic client: %w", err)
		}
		autoReg.Store(&autoregister.Controller{Dynamic: dyn, Identity: cfg.Kube.Identity, Grace: cfg.Kube.WorkloadEntryGrace,
			Logger: log.With("component", "autoregister")})
		kubeCtl, err = newKubeControl(cfg.Kube, kreg, func(snap *config.Snapshot) {
			sources.update(nil, snap, func(all *config.Snapshot) {
				if req := p.configChanged(all, nil); req != nil {
					deb.Enqueue(req)
				}
			})
		}, log)
		if err != nil {
			return err
		}
	}
	fs, err := store.NewFile(store.FileConfig{
		Dir:    cfg.ConfigDir,
		Load:   loadFile(log.With("component", "galley"), providerNames(cfg.Mesh)),
		Logger: log.With("component", "galley"),
		OnUpdate: func(u store.Update) {
			sources.update(u.New, nil, func(all *config.Snapshot) {
				if req := p.configChanged(all, u.Kinds); req != nil {
					deb.Enqueue(req)
				}
			})
		},
	})
	if err != nil {
		return fmt.Errorf("config store %s: %w", cfg.ConfigDir, err)
	}
	// Build the first push context synchronously so that the first proxy gets config.
	sources.update(fs.Snapshot(), nil, func(all *config.Snapshot) { p.configChanged(all, nil) })
	p.push(&model.PushRequest{Full: true, Reason: "initial"})

	xdsLis, err := net.Listen("tcp", cfg.XDSAddr)
	if err != nil {
		return fmt.Errorf("xds listener: %w", err)
	}
	monLis, err := net.Listen("tcp", cfg.MonitoringAddr)
	if err != nil {
		xdsLis.Close()
		return fmt.Errorf("monitoring listener: %w", err)
	}
	gs := grpc.NewServer(append(ads.ServerOptions(), // responses share resource bytes; static windows
		grpc.WriteBufferSize(cfg.XDSWriteBuffer),
		grpc.MaxConcurrentStreams(cfg.MaxStreamsPerConn),
		grpc.MaxSendMsgSize(cfg.XDSMaxSendSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: cfg.KeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	)...)
	adsServer.Register(gs)

	var secure *grpc.Server
	var secureLis net.Listener
	if authority != nil {
		if err := authority.RegisterMetrics(reg); err != nil {
			return fmt.Errorf("ca: metrics: %w", err)
		}
		tlsCfg, err := authority.ServerTLSConfig("istiod.istio-system.svc", "mastd", "localhost", "127.0.0.1")
		if err != nil {
			return fmt.Errorf("ca: serving certificate: %w", err)
		}
		if secureLis, err = net.Listen("tcp", cfg.SecureXDSAddr); err != nil {
			return fmt.Errorf("secure xds listener: %w", err)
		}
		secure = grpc.NewServer(append(ads.ServerOptions(), grpc.Creds(credentials.NewTLS(tlsCfg)), grpc.MaxConcurrentStreams(cfg.MaxStreamsPerConn),
			grpc.WriteBufferSize(cfg.XDSWriteBuffer),
			grpc.MaxSendMsgSize(cfg.XDSMaxSendSize),
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: cfg.KeepaliveTimeout}),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}))...)
		adsServer.Register(secure)
		authority.Register(secure)
	}

	guard := adminguard.Options{Hosts: cfg.DebugHosts, TokenFile: cfg.DebugTokenFile, RequireToken: true}
	if authority != nil {
		// The monitoring port also speaks TLS (sniffed), so that an admin
		// can authenticate with a client certificate instead of the token.
		monTLS, err := authority.ServerTLSConfig("istiod.istio-system.svc", "mastd", "localhost", "127.0.0.1")
		if err != nil {
			return fmt.Errorf("ca: monitoring serving certificate: %w", err)
		}
		monLis = newTLSSniffListener(monLis, monTLS)
		guard.AdminIdentities = cfg.DebugAdminIdentities
		guard.VerifyClient = func(chain []*x509.Certificate) (string, error) {
			id, err := authority.VerifyClientCert(chain)
			return id.String(), err
		}
	} else if len(cfg.DebugAdminIdentities) > 0 {
		return errors.New("--debug-admin-identities needs the CA (--ca-dir) to verify client certificates")
	}
	if guard.TokenFile == "" && cfg.CADir != "" {
		guard.TokenFile = filepath.Join(cfg.CADir, DebugTokenName)
		if err := ensureToken(guard.TokenFile); err != nil {
			return fmt.Errorf("debug token: %w", err)
		}
	}
	var osb *brokerServer
	if cfg.Broker.Enabled {
		if osb, err = newBroker(cfg, fs, authority, log.With("component", "broker")); err != nil {
			return err
		}
	}

	var dash *dashboard.Dashboard
	if cfg.Dashboard.Enabled {
		dash = newDashboard(cfg, adsServer, fs, authority, log.With("component", "dashboard"))
	}

	mux := http.NewServeMux()
	var gatherer prometheus.Gatherer = reg
	if mix != nil {
		gatherer = prometheus.Gatherers{reg, mix.svc}
	}
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.Handle("/debug/syncz", guard.ReadOnly(adsServer.SynczHandler()))
	mux.Handle("/debug/config_dump", guard.ReadOnly(adsServer.ConfigDumpHandler()))
	mux.Handle("/debug/configz", guard.ReadOnly(configzHandler(fs, adsServer.Proxies, cfg.Mesh.RootNamespace)))
	mux.Handle("/debug/registryz", guard.ReadOnly(registryzHandler(p)))
	mux.Handle("/debug/workloadhealthz", guard.ReadOnly(http.HandlerFunc(health.serveHealthz)))
	if authority != nil {
		mux.Handle("/debug/ca/rotate-root", guard.Mutating(rotateRootHandler(authority)))
		mux.Handle("/debug/ca/revoke", guard.Mutating(revokeHandler(authority)))
		mux.Handle("/debug/ca/revoked", guard.ReadOnly(revokedHandler(authority)))
	}
	mux.Handle("/debug/", guard.ReadOnly(http.NotFoundHandler()))
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.Handle("/debug/{$}", debugIndexHandler(debugPages(authority != nil, dash != nil)))
	if dash != nil {
		mux.Handle("/ui/", guard.ReadOnly(dash.Handler()))
		mux.Handle("/{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
			cancel()
		}()
	}
	run("config store", func() error { return fs.Run(ctx) })
	if kubeCtl != nil {
		run("kubernetes config store", func() error { return kubeCtl.run(ctx) })
	}
	run("debouncer", func() error { deb.Run(ctx); return nil })
	if idleGC != nil {
		run("idle gc", func() error { idleGC.Run(ctx); return nil })
	}
	if err := startKube(ctx, cfg, authority, kubeClient, &sources, log, run); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	run("jwks fetcher", func() error { p.jwks.Run(ctx); return nil })
	if authority != nil {
		run("revocation watcher", func() error {
			for {
				select {
				case <-authority.RevocationChanged():
					deb.Enqueue(&model.PushRequest{Full: true, Reason: "revocation"})
				case <-ctx.Done():
					return nil
				}
			}
		})
	}
	for _, w := range cfg.Registries {
		run("registry "+w.Name(), func() error {
			return w.Run(ctx, func() {
				if req := p.registriesChanged(); req != nil {
					deb.Enqueue(req)
				}
			})
		})
	}
	run("xds server", func() error { return gs.Serve(xdsLis) })
	run("monitoring server", func() error { return hs.Serve(monLis) })
	if secure != nil {
		run("secure xds and ca server", func() error { return secure.Serve(secureLis) })
		log.Info("ca serving", "secure_xds", secureLis.Addr().String(), "dir", cfg.CADir)
	}
	if dash != nil {
		run("dashboard", func() error { dash.Run(ctx); return nil })
	}
	if mix != nil {
		if err := mix.listen(authority); err != nil {
			return err
		}
		run("mixer", func() error { return mix.gs.Serve(mix.lis) })
		log.Info("mixer serving", "addr", mix.lis.Addr().String())
	}
	if rls != nil {
		run("ratelimit server", func() error { return rls.gs.Serve(rls.lis) })
		log.Info("ratelimit serving", "addr", rls.lis.Addr().String(), "redis", cfg.RateLimit.RedisURL != "")
	}
	if osb != nil {
		run("broker", func() error { return osb.run(ctx) })
		log.Info("broker serving", "addr", osb.lis.Addr().String(), "tls", osb.tls, "state", cfg.Broker.StateDir)
	}
	log.Info("mastd serving", "xds", xdsLis.Addr().String(), "monitoring", monLis.Addr().String(), "config", cfg.ConfigDir)
	if cfg.Ready != nil {
		cfg.Ready(xdsLis.Addr(), monLis.Addr())
	}

	<-ctx.Done()
	adsServer.Close()
	gs.GracefulStop()
	if mix != nil {
		mix.stop()
	}
	if rls != nil {
		rls.stop()
	}
	if secure != nil {
		secure.GracefulStop()
	}
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	hs.Shutdown(shutdownCtx)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// loadFile decodes and validates one file; any error rejects the whole file,
// except a CUSTOM AuthorizationPolicy naming a provider the MeshConfig does
// not define (providers): that is logged as an error and the policy kept,
// so that it fails closed instead of vanishing.
func loadFile(log *slog.Logger, providers []string) func(string, []byte) ([]config.Resource, error) {
	return func(path string, data []byte) ([]config.Resource, error) {
		rs, problems := config.Load(path, data)
		for _, w := range problems.Warnings() {
			log.Warn("config warning", "problem", w.String())
		}
		if problems.HasErrors() {
			return nil, problems.Errors()
		}
		for _, p := range config.CheckCustomProviders(rs, providers) {
			log.Error("config error", "problem", p.String())
		}
		return rs, nil
	}
}

// providerNames lists the MeshConfig's extension provider names.
func providerNames(m model.MeshConfig) []string {
	out := make([]string, 0, len(m.ExtensionProviders))
	for _, p := range m.ExtensionProviders {
		out = append(out, p.GetName())
	}
	return out
}

// pipeline turns config snapshots into push contexts and push requests.
type pipeline struct {
	mesh model.MeshConfig
	ads  *ads.Server
	jwks *jwks.Fetcher
	log  *slog.Logger
	// ca, when it runs, supplies the CRL of every push context.
	ca      *ca.CA
	crlFrom *ca.CRL               // the CA's list behind crl
	crl     *model.RevocationList // guarded by mu
	// rateLimit, when running, is given the RateLimit rules of every snapshot.
	rateLimit *ratelimit.Service

	events *prometheus.CounterVec // pilot_k8s_cfg_events
	mixer  *mixerServer           // nil unless the Mixer runs

	// watchers are the registries besides ServiceEntries, by priority.
	watchers []registry.Watcher

	mu      sync.Mutex
	cfg     *config.Snapshot
	se      *registry.Snapshot   // the ServiceEntry registry's
	seb     serviceentry.Builder // builds se, rebuilding only what a change touches (guarded by mu)
	reg     *registry.Snapshot   // se merged with the watchers'
	pc      *model.PushContext   // the last push's, which the next one is derived from
	version atomic.Uint64
}

// build makes the ServiceEntry registry's snapshot from cfg, with the
// watchers' instances as workloads its selectors can pick, and merges it with
// the watchers' snapshots.
func (p *pipeline) build(cfg *config.Snapshot) (se, merged *registry.Snapshot) {
	opts := serviceentry.Options{TrustDomain: p.mesh.TrustDomain, DomainSuffix: p.mesh.DomainSuffix}
	if len(p.watchers) == 0 {
		se = p.seb.Build(cfg, opts)
		return se, se
	}
	snaps := make([]*registry.Snapshot, 1, 1+len(p.watchers))
	for _, w := range p.watchers {
		s := w.Snapshot()
		snaps = append(snaps, s)
		opts.Workloads = registryWorkloads(opts.Workloads, s)
	}
	se = p.seb.Build(cfg, opts)
	snaps[0] = se
	return se, aggregate.Merge(snaps...)
}

// registryWorkloads appends a registry's instances as workloads: one per
// namespace, address and label set, with its ports by service port name.
func registryWorkloads(dst []serviceentry.Workload, s *registry.Snapshot) []serviceentry.Workload {
	if s == nil {
		return dst
	}
	type key struct {
		ns, addr, sa string
		labels       string
	}
	index := map[key]int{}
	for i, svc := range s.Services {
		if i > 0 && s.Services[i-1].Hostname == svc.Hostname {
			continue
		}
		for _, e := range s.Endpoints[svc.Hostname] {
			p, ok := svc.PortByNumber(e.ServicePort)
			if !ok {
				continue
			}
			k := key{svc.Namespace, e.Address, e.ServiceAccount, fmt.Sprint(e.Labels)}
			j, ok := index[k]
			if !ok {
				j = len(dst)
				index[k] = j
				dst = append(dst, serviceentry.Workload{Namespace: svc.Namespace, Address: e.Address, Ports: map[string]uint32{},
					Labels: e.Labels, Locality: e.Locality, ServiceAccount: e.ServiceAccount, Network: e.Network, Weight: e.Weight})
			}
			if p.Name != "" {
				dst[j].Ports[p.Name] = e.Port
			}
		}
	}
	return dst
}

// registriesChanged re-merges after a watcher changed and says what must be
// pushed: nothing, EDS for the hosts whose endpoints changed, or a full push.
func (p *pipeline) registriesChanged() *model.PushRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg == nil {
		return nil // the first config snapshot merges and pushes
	}
	old := p.reg
	se, merged := p.build(p.cfg)
	p.se, p.reg = se, registry.Reuse(old, merged)
	servicesChanged, hosts := registry.Diff(old, p.reg)
	if servicesChanged {
		return &model.PushRequest{Full: true, Reason: "registry", Start: time.Now()}
	}
	req := endpointPush(old, p.reg, hosts)
	if req != nil {
		req.Reason, req.Start = "registry endpoints", time.Now()
	}
	return req
}

// configChanged records a new config snapshot and says what must be pushed:
// an EDS-only request when only endpoints changed, else a full push. kinds
// are the kinds of the resources that changed (the store reports them).
func (p *pipeline) configChanged(snap *config.Snapshot, kinds map[config.Kind]struct{}) *model.PushRequest {
	if p.jwks != nil {
		p.jwks.Want(model.JWKSKeys(snap))
	}
	if p.mixer != nil {
		p.mixer.svc.Update(snap)
	}
	if rules := ratelimit.Rules(snap); p.rateLimit != nil {
		p.rateLimit.Update(rules)
	} else {
		for _, r := range rules {
			if !r.Local {
				p.log.Warn("GLOBAL RateLimit not enforced: mastd runs without its rate-limit service (--components ...,ratelimit)", "ratelimit", r.ID)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ap := kinds[config.AuthorizationPolicy]; ap || p.cfg == nil {
		// One CUSTOM provider per workload: name the policies that break it.
		for _, pr := range config.CheckCustomProviderConflicts(snap.List(config.AuthorizationPolicy), p.mesh.RootNamespace) {
			p.log.Error("config error", "problem", pr.String())
		}
	}
	se, reg := p.build(snap)
	oldCfg, oldReg := p.cfg, p.reg
	reg = registry.Reuse(oldReg, reg)
	p.cfg, p.se, p.reg = snap, se, reg
	if oldCfg == nil {
		return &model.PushRequest{Full: true, Reason: "initial"}
	}
	countConfigEvents(p.events, oldCfg, snap, kinds)
	now := time.Now()
	if _, we := kinds[config.WorkloadEntry]; we && len(kinds) == 1 {
		servicesChanged, hosts := registry.Diff(oldReg, reg)
		if !servicesChanged {
			req := endpointPush(oldReg, reg, hosts)
			if req != nil {
				req.Start = now
			}
			return req
		}
	}
	req := &model.PushRequest{Full: true, Types: typesFor(kinds, oldCfg, snap), Reason: "config", Start: now}
	if _, vs := kinds[config.VirtualService]; vs && len(kinds) == 1 && req.Types != nil {
		if _, lds := req.Types[generate.ListenerType]; !lds {
			// HTTP routes alone changed: the push reaches only what
			// depends on the changed VirtualServices' hosts.
			req.Hosts = routeHosts(oldCfg, snap, p.mesh.DomainSuffix)
		}
	}
	return req
}

// push builds a push context from the latest snapshots and hands it to the ADS server.
func (p *pipeline) push(req *model.PushRequest) {
	p.mu.Lock()
	cfg, reg, prev := p.cfg, p.reg, p.pc
	p.mu.Unlock()
	v := p.version.Add(1)
	// Versions sort in push order (time, then a zero-padded counter), so
	// tools can tell newer from older by comparing strings.
	pc := model.NextPushContext(prev, fmt.Sprintf("%s/%08d", time.Now().UTC().Format("2006-01-02T15:04:05Z"), v), p.mesh, cfg, reg)
	p.mu.Lock()
	p.pc = pc
	p.mu.Unlock()
	if p.jwks != nil {
		pc.JWKS = p.jwks.Snapshot()
	}
	pc.CRL = p.revocationList()
	p.log.Debug("push", "version", pc.Version, "full", req.Full, "types", len(req.Types), "addresses", len(req.Addresses), "eds_hosts", len(req.EDSHosts), "reason", req.Reason)
	p.ads.Push(pc, req)
}

// revocationList returns the CA's CRL for push contexts: the same pointer
// while the list is unchanged (generate.Cache keys on it). When the CA
// cannot sign a CRL the previous one stays, and the error is logged.
func (p *pipeline) revocationList() *model.RevocationList {
	if p.ca == nil {
		return nil
	}
	crl, err := p.ca.CRL()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.log.Error("revocation list not updated: proxies keep the previous one", "error", err)
		return p.crl
	}
	if crl != p.crlFrom {
		p.crlFrom, p.crl = crl, nil
		if crl != nil {
			p.crl = &model.RevocationList{PEM: crl.PEM}
			p.log.Info("revocation list pushed to proxies", "revoked_certificates", len(crl.Serials), "serials", crl.Serials)
		}
	}
	return p.crl
}
