// Package consul is the Consul service registry: services registered in a
// Consul catalog become mesh services named <service>.service.consul, with
// their healthy instances as endpoints. It follows Consul with two blocking
// queries whatever the number of services (the catalog's service list and
// the state of every health check) and fetches the services a change may
// have touched with a few short requests (watch.go), backs off on errors,
// and keeps the last services it knew while Consul cannot be reached.
package consul

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mast-mesh/mast/internal/registry"
)

// Config configures the Consul registry; cmd/mastd fills it from flags.
type Config struct {
	// Addr is Consul's HTTP API: host:port, or an http://, https:// or
	// unix:// URL.
	Addr string
	// Token or TokenFile is the ACL token (needs service:read and
	// node:read on what the mesh should see).
	Token, TokenFile string
	// TLS to Consul's HTTPS API: CA, client certificate and key, the name
	// to verify (default: the address's host).
	CAFile, CertFile, KeyFile, TLSServerName string
	// Datacenter to read (default: the agent's own). Namespace and
	// Partition select a Consul Enterprise namespace and admin partition.
	Datacenter, Namespace, Partition string
	// AllowWarning keeps instances whose worst health check is "warning"
	// (by default only passing instances take traffic).
	AllowWarning bool
	// TrustDomain forms the SPIFFE IDs of instances that declare a
	// service account in their meta.
	TrustDomain string
	// WaitTime is the longest a blocking query waits for a change (2m).
	WaitTime time.Duration
	// MinBackoff and MaxBackoff bound the delay before retrying after an
	// error, doubled at each failure (100ms, 15s).
	MinBackoff, MaxBackoff time.Duration
	// MaxResponseBytes bounds one answer from Consul (64 MiB); a larger
	// one is an error and changes nothing.
	MaxResponseBytes int64
	// MaxFetches bounds the services fetched at once after a change (16).
	// With the two blocking queries, the registry never holds more than
	// MaxFetches+2 connections to Consul, far below a Consul agent's
	// default limit of 200 per client (limits.http_max_conns_per_client).
	MaxFetches int
	Logger     *slog.Logger
}

// Registry follows a Consul catalog. Build it with New, then Run it.
type Registry struct {
	cfg    Config
	client *api.Client
	log    *slog.Logger
	snap   atomic.Pointer[registry.Snapshot]
	dirty  chan struct{} // a service changed: rebuild the snapshot

	mu       sync.Mutex
	services map[string]converted // by Consul service name
	errs     map[string]error     // failing watches and fetches, by watchKey/serviceKey
	status   registry.Status
}

var _ registry.Watcher = (*Registry)(nil)

// New checks cfg and builds the client; nothing is contacted until Run.
func New(cfg Config) (*Registry, error) {
	if cfg.Addr == "" {
		return nil, errors.New("consul: the address is empty")
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = 2 * time.Minute
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(15*time.Second, cfg.MinBackoff)
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 64 << 20
	}
	if cfg.MaxFetches <= 0 {
		cfg.MaxFetches = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tlsCfg := api.TLSConfig{Address: cfg.TLSServerName, CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: cfg.MaxFetches + 2, // two long polls and the fetches
		MaxConnsPerHost:     cfg.MaxFetches + 2,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	hc, err := api.NewHttpClient(tr, tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("consul: TLS: %w", err)
	}
	// A hung Consul must not hang a watch forever: a blocking query
	// answers within WaitTime plus Consul's jitter of WaitTime/16.
	hc.Timeout = cfg.WaitTime + cfg.WaitTime/8 + 10*time.Second
	hc.Transport = limitBody{hc.Transport, cfg.MaxResponseBytes}
	client, err := api.NewClient(&api.Config{
		Address:    cfg.Addr,
		Token:      cfg.Token,
		TokenFile:  cfg.TokenFile,
		Datacenter: cfg.Datacenter,
		Namespace:  cfg.Namespace,
		Partition:  cfg.Partition,
		HttpClient: hc,
		TLSConfig:  tlsCfg,
		WaitTime:   cfg.WaitTime,
	})
	if err != nil {
		return nil, fmt.Errorf("consul %s: %w", cfg.Addr, err)
	}
	r := &Registry{
		cfg:      cfg,
		client:   client,
		log:      cfg.Logger,
		dirty:    make(chan struct{}, 1),
		services: map[string]converted{},
		errs:     map[string]error{},
		status:   registry.Status{Name: "consul", Source: cfg.Addr},
	}
	r.snap.Store(&registry.Snapshot{Endpoints: map[string][]*registry.Endpoint{}})
	return r, nil
}

// Name is "consul".
func (r *Registry) Name() string { return "consul" }

// Snapshot is the services last built from Consul's answers.
func (r *Registry) Snapshot() *registry.Snapshot { return r.snap.Load() }

// Status says whether Consul answers and what is served.
func (r *Registry) Status() registry.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	s := r.snap.Load()
	st.Services = len(s.Services)
	for _, eps := range s.Endpoints {
		st.Endpoints += len(eps)
	}
	return st
}

// Run follows Consul until ctx ends.
func (r *Registry) Run(ctx context.Context, notify func()) error {
	p := newPending()
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context, *pending){r.watchCatalog, r.watchChecks, r.syncServices} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx, p)
		}()
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-r.dirty:
			if r.rebuild() {
				notify()
			}
		}
	}
}

func (r *Registry) markDirty() {
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// rebuild makes a new snapshot from every service's last answer; it
// reports whether the snapshot was replaced.
func (r *Registry) rebuild() bool {
	r.mu.Lock()
	names := make([]string, 0, len(r.services))
	for n := range r.services {
		names = append(names, n)
	}
	slices.Sort(names) // hostnames sort as names do: they share a suffix
	s := &registry.Snapshot{Services: make([]*registry.Service, 0, len(names)), Endpoints: make(map[string][]*registry.Endpoint, len(names))}
	for _, n := range names {
		c := r.services[n]
		if len(c.svc.Ports) == 0 {
			continue // no instance declares a port (yet)
		}
		s.Services = append(s.Services, c.svc)
		if len(c.eps) > 0 {
			s.Endpoints[c.svc.Hostname] = c.eps
		}
	}
	r.mu.Unlock()
	old := r.snap.Load()
	if changed, hosts := registry.Diff(old, s); !changed && len(hosts) == 0 {
		return false
	}
	r.snap.Store(s)
	return true
}

// setErr records the outcome of one watch or fetch and keeps Status's
// staleness in step: stale while any of them fails.
func (r *Registry) setErr(key string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.errs, key)
	} else {
		if _, failing := r.errs[key]; !failing {
			r.log.Warn("consul unreachable or answering badly: keeping the last known services", "watch", key, "err", err)
		}
		r.errs[key] = err
		r.status.LastError = fmt.Sprintf("%s: %v", key, err)
	}
	wasStale := r.status.Stale
	r.status.Stale = len(r.errs) > 0
	if wasStale && !r.status.Stale {
		r.log.Info("consul answers again")
	}
}

// decodeSafely runs one client call, turning a panic of its JSON decoding
// into an error: consul/api v1.34.5's HealthCheckDefinition.UnmarshalJSON
// dereferences nil on `"Definition": null` (found by FuzzDecodeHealth), and
// a bad answer must not take mastd down.
func decodeSafely(call func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoding the answer: %v", p)
		}
	}()
	return call()
}

// nextIndex applies Consul's rules for blocking queries: an index that went
// backwards restarts from 0, an index of 0 is sent as 1, and an answer that
// came at once without a change waits MinBackoff, so that no misbehaving
// server can make a watch spin.
func (r *Registry) nextIndex(ctx context.Context, prev, last uint64, start time.Time) uint64 {
	if last == prev && time.Since(start) < r.cfg.MinBackoff {
		sleep(ctx, r.cfg.MinBackoff)
	}
	switch {
	case last < prev:
		return 0
	case last == 0:
		return 1
	}
	return last
}

// backoff doubles from MinBackoff to MaxBackoff, with jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (r *Registry) newBackoff() *backoff {
	return &backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff, cur: r.cfg.MinBackoff}
}

func (b *backoff) reset() { b.cur = b.min }

func (b *backoff) wait(ctx context.Context) {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(b.cur*2, b.max)
	sleep(ctx, d)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// limitBody makes an answer larger than n bytes fail to decode instead of
// filling memory.
type limitBody struct {
	rt http.RoundTripper
	n  int64
}

func (l limitBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedReader{rc: resp.Body, left: l.n}
	return resp, nil
}

// errTooLarge is returned once an answer passes MaxResponseBytes.
var errTooLarge = errors.New("answer larger than the limit")

type limitedReader struct {
	rc   io.ReadCloser
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedReader) Close() error { return l.rc.Close() }
