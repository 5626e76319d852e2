package upstream

import (
	"cmp"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// Host is one upstream endpoint's runtime: its address, connections and
// counters. It outlives configuration updates that keep it, and no update
// writes to it: what an update may change (weight, locality) is in the
// cluster's host set (HostInfo), which is replaced as a whole.
type Host struct {
	Addr string
	// Active counts requests in flight to this host.
	Active atomic.Int64
	// outlier is the host's outlier detection state (outlier.go).
	outlier hostOutlier
	// pool is made on the host's first connection (connPool): in a large
	// mesh most hosts are never called, and a pool costs ~200 bytes. It is
	// made from the fields below, which never change: a host whose pool
	// configuration changes is replaced.
	pool atomic.Pointer[pool]
	// retired: the host left its cluster or was replaced; its pool
	// drains (retire).
	retired atomic.Bool
	// created is when the host was added (Unix nanoseconds): slow start
	// (slowstart.go) ramps its weight up from then.
	created int64
	mgr     *Manager
	cfg     *xdsparse.Cluster
	tls     *xdsparse.TLSContext
	stats   *Stats
}

func (m *Manager) newHost(addr string, c *Cluster, tc *xdsparse.TLSContext, created int64) *Host {
	return &Host{Addr: addr, mgr: m, cfg: c.Cfg, tls: tc, stats: c.Stats, created: created}
}

// connPool returns the host's pool, making it on first use.
func (h *Host) connPool() *pool {
	if p := h.pool.Load(); p != nil {
		return p
	}
	pc := poolConfigWithTLS(h.cfg, h.tls)
	pc.legacyH2 = h.mgr.LegacyH2
	p := newPool(h.Addr, pc, h.stats, h.mgr.dial)
	p.tls, p.tlsb = h.tls, h.mgr.TLS
	if h.pool.CompareAndSwap(nil, p) {
		// A request that picked the host before it was retired makes its
		// pool drain at once (retire may not have seen the pool).
		if h.retired.Load() {
			p.drain()
		}
		return p
	}
	return h.pool.Load()
}

// retire drains the host's pool, as Envoy drains the pools of a host that
// is removed or whose cluster changed: idle connections close now, busy
// ones when their requests end; none is reused. The host may still serve
// requests that picked it before (on connections of their own).
func (h *Host) retire() {
	h.retired.Store(true)
	if p := h.pool.Load(); p != nil {
		p.drain()
	}
}

// Stats are a cluster's counters.
type Stats struct {
	RqTotal, Rq2xx, Rq3xx, Rq4xx, Rq5xx   atomic.Uint64
	RqTimeout, RqRetry, RqPendingOverflow atomic.Uint64
	// RqRetryOverflow counts retries the max_retries breaker refused.
	RqRetryOverflow atomic.Uint64
	// RqPerTryTimeout counts tries that passed their per-try timeout;
	// RqHedged the hedged tries started then, RqHedgeCancelled the tries
	// cancelled because another answered first.
	RqPerTryTimeout, RqHedged, RqHedgeCancelled atomic.Uint64
	CxTotal, CxConnectFail                      atomic.Uint64
	// RetriesActive are the retry attempts in flight (max_retries).
	CxActive, RqActive, RetriesActive atomic.Int64
}

// Cluster is a cluster's runtime: configuration, hosts, balancer, limits.
type Cluster struct {
	Cfg   *xdsparse.Cluster
	Stats *Stats
	set   atomic.Pointer[hostSet]
	rr    atomic.Uint64
	rnd   atomic.Uint64
	log   *slog.Logger
	// od is the cluster's outlier detection bookkeeping (outlier.go).
	od clusterOutlier
	// recent counts requests for a retry budget's interval (retrybudget.go).
	recent recentCounter
}

// Manager owns clusters and hosts across configuration updates so that
// connection pools, balancer state and counters survive them.
type Manager struct {
	mu       sync.Mutex
	clusters map[string]*Cluster
	hosts    map[hostKey]*Host
	log      *slog.Logger
	dial     func(network, addr string, timeout time.Duration) (net.Conn, error)
	// TLS builds the client side of TLS transport sockets; nil makes
	// connections to TLS endpoints fail.
	TLS *tlsconfig.Builder
	// LegacyH2 sends HTTP/2 upstream requests through x/net's
	// http2.Transport instead of the proxy's own client (h2client).
	LegacyH2 bool
	// origDst holds when each ORIGINAL_DST host (a key of hosts) was last
	// asked for; hosts unused for OrigDstCleanup are dropped, as Envoy's
	// cleanup_interval does (they accumulated until the next push before).
	origDst   map[hostKey]time.Time
	lastSweep time.Time
	// OrigDstCleanup is how long an unused ORIGINAL_DST host is kept
	// (Envoy's cleanup_interval default, 5s).
	OrigDstCleanup time.Duration
	now            func() time.Time
}

// hostKey names a host: its cluster and address. The strings are those of
// the configuration (no per-host concatenation).
type hostKey struct{ cluster, addr string }

// DefaultOrigDstCleanup is Envoy's ORIGINAL_DST cleanup_interval default.
const DefaultOrigDstCleanup = 5 * time.Second

// NewManager returns an empty manager.
func NewManager(log *slog.Logger) *Manager {
	return &Manager{clusters: map[string]*Cluster{}, hosts: map[hostKey]*Host{}, log: log,
		origDst: map[hostKey]time.Time{}, OrigDstCleanup: DefaultOrigDstCleanup, now: time.Now,
		dial: func(network, addr string, timeout time.Duration) (net.Conn, error) {
			return net.DialTimeout(network, addr, timeout)
		}}
}

// Update installs cluster and endpoint configuration and returns the
// clusters by name. Unchanged clusters keep their runtime (and pools);
// clusters that are gone have their idle connections closed.
func (m *Manager) Update(cfgs map[string]*xdsparse.Cluster, eps map[string]*xdsparse.EndpointSet) map[string]*Cluster {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*Cluster, len(cfgs))
	liveHosts := map[hostKey]bool{}
	for name, cfg := range cfgs {
		c := m.clusters[name]
		if c == nil || c.Cfg != cfg {
			nc := &Cluster{Cfg: cfg, Stats: &Stats{}, log: m.log}
			if c != nil {
				nc.Stats = c.Stats
				nc.rr.Store(c.rr.Load())
			}
			c = nc
		}
		es := cfg.Endpoints
		if cfg.Type == xdsparse.EDS {
			es = eps[cfg.EDSName]
		}
		c.set.Store(m.buildSet(c, es, liveHosts))
		out[name] = c
	}
	for k, h := range m.hosts {
		if !liveHosts[k] {
			h.retire()
			delete(m.hosts, k)
			delete(m.origDst, k)
		}
	}
	m.clusters = out
	return out
}

func (m *Manager) buildSet(c *Cluster, es *xdsparse.EndpointSet, live map[hostKey]bool) *hostSet {
	hs := &hostSet{}
	if es == nil {
		return hs
	}
	// The hosts one update adds share their creation time: slow start
	// treats them alike.
	created := m.now().UnixNano()
	// Every priority's EDS-healthy endpoints are hosts; picks choose a
	// priority by its usable share (priority.go).
	type level struct {
		prio       uint32
		total      int
		hosts      []HostInfo
		localities map[string]*hostSet
	}
	var levels []*level
	levelOf := func(p uint32) *level {
		for _, l := range levels {
			if l.prio == p {
				return l
			}
		}
		l := &level{prio: p}
		levels = append(levels, l)
		return l
	}
	for _, g := range es.Localities {
		l := levelOf(g.Priority)
		l.total += len(g.Endpoints)
		var loc *hostSet
		if c.Cfg.LocalityWeighted {
			if l.localities == nil {
				l.localities = map[string]*hostSet{}
			}
			if loc = l.localities[g.Locality]; loc == nil {
				loc = &hostSet{weight: g.Weight}
				l.localities[g.Locality] = loc
			}
			loc.endpoints += len(g.Endpoints)
		}
		for _, e := range g.Endpoints {
			if !e.Healthy {
				continue
			}
			key := hostKey{c.Cfg.Name, e.Address}
			h := m.hosts[key]
			tc := c.Cfg.TLSFor(e.TLSMatch)
			if h == nil || poolConfigWithTLS(h.cfg, h.tls) != poolConfigWithTLS(c.Cfg, tc) {
				if h != nil {
					// New transport settings (TLS, protocol, limits):
					// the old connections must not carry new requests.
					h.retire()
				}
				h = m.newHost(e.Address, c, tc, created)
				m.hosts[key] = h
			}
			live[key] = true
			hi := HostInfo{Host: h, Weight: e.Weight, Locality: e.Locality, Priority: g.Priority}
			hs.hosts = append(hs.hosts, hi)
			l.hosts = append(l.hosts, hi)
			if loc != nil {
				loc.hosts = append(loc.hosts, hi)
			}
		}
	}
	slices.SortFunc(levels, func(a, b *level) int { return cmp.Compare(a.prio, b.prio) })
	hs.overprovision = es.Overprovisioning
	if hs.overprovision == 0 {
		hs.overprovision = xdsparse.DefaultOverprovisioning
	}
	if len(levels) <= 1 && !c.Cfg.LocalityWeighted {
		hs.build(c.Cfg)
		return hs
	}
	for _, l := range levels {
		ls := &hostSet{hosts: l.hosts, endpoints: l.total, overprovision: hs.overprovision}
		ls.build(c.Cfg)
		for _, name := range slices.Sorted(maps.Keys(l.localities)) {
			loc := l.localities[name]
			loc.overprovision = hs.overprovision
			loc.build(c.Cfg)
			ls.localities = append(ls.localities, loc)
		}
		hs.levels = append(hs.levels, ls)
	}
	return hs
}

// HostInfo is one host of a cluster as one update configured it. A
// cluster's HostInfos are an immutable snapshot, swapped atomically by
// updates: picks and readers never lock and never see half an update.
type HostInfo struct {
	Host     *Host
	Weight   uint32
	Locality string
	Priority uint32
}

// Endpoints returns the current hosts with their weights and localities
// (only healthy endpoints of the best priority are hosts). The slice is
// shared: callers must not modify it.
func (c *Cluster) Endpoints() []HostInfo { return c.set.Load().hosts }

// Hosts returns the current hosts (a new slice: not for the request path).
func (c *Cluster) Hosts() []*Host {
	infos := c.Endpoints()
	out := make([]*Host, len(infos))
	for i := range infos {
		out[i] = infos[i].Host
	}
	return out
}

// OriginalDstHost returns a host for addr, for ORIGINAL_DST clusters.
func (m *Manager) OriginalDstHost(c *Cluster, addr string) *Host {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, strconv.Itoa(80))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.Sub(m.lastSweep) >= m.OrigDstCleanup {
		m.sweepOrigDst(now)
	}
	key := hostKey{c.Cfg.Name, addr}
	h := m.hosts[key]
	if h == nil {
		h = m.newHost(addr, c, c.Cfg.TLS, now.UnixNano())
		m.hosts[key] = h
	}
	m.origDst[key] = now
	return h
}

// sweepOrigDst drops ORIGINAL_DST hosts not asked for during the cleanup
// interval and closes their idle connections. Callers that still hold such a
// host keep using it; the next lookup makes a new one. m.mu is held.
func (m *Manager) sweepOrigDst(now time.Time) {
	m.lastSweep = now
	for k, used := range m.origDst {
		if now.Sub(used) >= m.OrigDstCleanup {
			if h := m.hosts[k]; h != nil && h.Active.Load() == 0 {
				h.retire()
				delete(m.hosts, k)
				delete(m.origDst, k)
			}
		}
	}
}

// Close closes all idle connections, and the others once their requests end.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.hosts {
		h.retire()
	}
}
