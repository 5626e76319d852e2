// Package eureka is the Eureka service registry: applications registered in
// a Eureka server (REST API v2) become mesh services named by their
// vipAddress and secureVipAddress, with their UP instances as endpoints. It
// fetches the registry as a Eureka client does: a full fetch first, then
// deltas (/apps/delta) applied to its copy, whose reconcile hash must match
// the server's apps__hashcode, else it fetches everything again.
package eureka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/httpget"
	"github.com/mast-mesh/mast/internal/registry"
)

// Metadata keys Mast reads from an instance.
const (
	MetaProtocol       = "protocol"        // protocol of the (non-secure) port; HTTP by default
	MetaServiceAccount = "service-account" // the workload's service account (SPIFFE identity)
	MetaNamespace      = "mesh-namespace"  // mesh namespace; "default" when absent
)

// Config configures the Eureka registry; cmd/mastd fills it from flags.
type Config struct {
	// URL is the server's API base, e.g. http://eureka:8080/eureka/v2.
	URL string
	// XML asks for XML instead of JSON.
	XML bool
	// Interval between fetches (Eureka clients' 30s by default).
	Interval time.Duration
	// TrustDomain forms the SPIFFE IDs of instances that declare a
	// service account.
	TrustDomain string
	// MaxResponseBytes bounds one answer (64 MiB).
	MaxResponseBytes int64
	// Client makes the requests (a client with a 30s timeout by default).
	Client *http.Client
	Logger *slog.Logger
}

// Registry follows a Eureka server. Build it with New, then Run it.
type Registry struct {
	cfg  Config
	log  *slog.Logger
	snap atomic.Pointer[registry.Snapshot]

	apps map[string]map[string]*Instance // local copy: app -> instance id -> instance (Run's goroutine only)

	mu          sync.Mutex
	status      registry.Status
	fullFetches int
	mismatches  int
}

var _ registry.Watcher = (*Registry)(nil)

// New checks cfg; nothing is contacted until Run.
func New(cfg Config) (*Registry, error) {
	if cfg.URL == "" {
		return nil, errors.New("eureka: the URL is empty")
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 64 << 20
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Registry{cfg: cfg, log: cfg.Logger, status: registry.Status{Name: "eureka", Source: cfg.URL}}
	r.snap.Store(&registry.Snapshot{Endpoints: map[string][]*registry.Endpoint{}})
	return r, nil
}

// Name is "eureka".
func (r *Registry) Name() string { return "eureka" }

// Snapshot is the services last built from the server's answers.
func (r *Registry) Snapshot() *registry.Snapshot { return r.snap.Load() }

// Status says whether the server answers and what is served.
func (r *Registry) Status() registry.Status {
	r.mu.Lock()
	st := r.status
	r.mu.Unlock()
	s := r.snap.Load()
	st.Services = len(s.Services)
	for _, eps := range s.Endpoints {
		st.Endpoints += len(eps)
	}
	return st
}

// Fetches reports how many full fetches were made and how many deltas
// failed the hash check (each followed by a full fetch).
func (r *Registry) Fetches() (full, mismatches int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fullFetches, r.mismatches
}

// Run fetches until ctx ends.
func (r *Registry) Run(ctx context.Context, notify func()) error {
	for {
		err := r.sync(ctx)
		r.mu.Lock()
		if err != nil && ctx.Err() == nil {
			if !r.status.Stale {
				r.log.Warn("eureka unreachable or answering badly: keeping the last known services", "err", err)
			}
			r.status.Stale, r.status.LastError = true, err.Error()
		} else if err == nil {
			if r.status.Stale {
				r.log.Info("eureka answers again")
			}
			r.status.Stale, r.status.Synced, r.status.LastSync = false, true, time.Now()
		}
		r.mu.Unlock()
		if err == nil && r.publish() {
			notify()
		}
		t := time.NewTimer(r.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// sync brings the local copy up to date: a delta when there is a copy,
// else (or when the delta's hash does not match) a full fetch.
func (r *Registry) sync(ctx context.Context) error {
	if r.apps != nil {
		delta, err := r.fetch(ctx, "/apps/delta")
		if err != nil {
			return fmt.Errorf("delta: %w", err)
		}
		next := cloneApps(r.apps)
		applyDelta(next, delta)
		if got := HashCode(flatten(next)); got == delta.AppsHashcode {
			r.apps = next
			return nil
		} else {
			r.log.Info("eureka delta does not reconcile: fetching the whole registry", "local", got, "server", delta.AppsHashcode)
			r.mu.Lock()
			r.mismatches++
			r.mu.Unlock()
		}
	}
	full, err := r.fetch(ctx, "/apps")
	if err != nil {
		return fmt.Errorf("full fetch: %w", err)
	}
	apps := map[string]map[string]*Instance{}
	for _, a := range full.Applications {
		if a == nil {
			continue
		}
		for _, i := range a.Instances {
			if i != nil {
				put(apps, cmp.Or(i.App, a.Name), i)
			}
		}
	}
	r.apps = apps
	r.mu.Lock()
	r.fullFetches++
	r.mu.Unlock()
	return nil
}

func (r *Registry) fetch(ctx context.Context, path string) (*Applications, error) {
	accept := "application/json"
	if r.cfg.XML {
		accept = "application/xml"
	}
	body, err := httpget.Get(ctx, r.cfg.Client, r.cfg.URL+path, accept, r.cfg.MaxResponseBytes)
	if err != nil {
		return nil, err
	}
	apps, err := Decode(body, r.cfg.XML)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return apps, nil
}

// Decode reads an /apps or /apps/delta answer in JSON or XML.
func Decode(body []byte, xml bool) (*Applications, error) {
	if xml {
		return DecodeApplicationsXML(body)
	}
	return DecodeApplicationsJSON(body)
}

func put(apps map[string]map[string]*Instance, app string, i *Instance) {
	app = strings.ToUpper(app)
	m := apps[app]
	if m == nil {
		m = map[string]*Instance{}
		apps[app] = m
	}
	m[i.ID()] = i
}

func cloneApps(in map[string]map[string]*Instance) map[string]map[string]*Instance {
	out := make(map[string]map[string]*Instance, len(in))
	for a, m := range in {
		c := make(map[string]*Instance, len(m))
		for id, i := range m {
			c[id] = i
		}
		out[a] = c
	}
	return out
}

// applyDelta applies ADDED, MODIFIED and DELETED instances to apps.
func applyDelta(apps map[string]map[string]*Instance, delta *Applications) {
	for _, a := range delta.Applications {
		if a == nil {
			continue
		}
		for _, i := range a.Instances {
			if i == nil {
				continue
			}
			app := strings.ToUpper(cmp.Or(i.App, a.Name))
			switch i.ActionType {
			case ActionDeleted:
				delete(apps[app], i.ID())
				if len(apps[app]) == 0 {
					delete(apps, app)
				}
			default: // ADDED, MODIFIED
				put(apps, app, i)
			}
		}
	}
}

// flatten lists the local copy by application name and instance id, so
// that conversion is deterministic.
func flatten(apps map[string]map[string]*Instance) []*Application {
	out := make([]*Application, 0, len(apps))
	for _, name := range slices.Sorted(maps.Keys(apps)) {
		m := apps[name]
		a := &Application{Name: name}
		for _, id := range slices.Sorted(maps.Keys(m)) {
			a.Instances = append(a.Instances, m[id])
		}
		out = append(out, a)
	}
	return out
}

// publish converts the local copy and stores it when it differs; it
// reports whether it did.
func (r *Registry) publish() bool {
	s := Convert(flatten(r.apps), r.cfg.TrustDomain)
	if changed, hosts := registry.Diff(r.snap.Load(), s); !changed && len(hosts) == 0 {
		return false
	}
	r.snap.Store(s)
	return true
}

// Convert turns applications into mesh services: one per vipAddress (its
// port) and secureVipAddress (its secure port; one service when both name
// the same host), with UP instances as endpoints. Instances that are not UP
// still declare their services, so that routes to them stay valid. A
// service's namespace is its first instance's (in the order given).
func Convert(apps []*Application, trustDomain string) *registry.Snapshot {
	type svc struct {
		s   *registry.Service
		eps []*registry.Endpoint
	}
	byHost := map[string]*svc{}
	for _, a := range apps {
		if a == nil {
			continue
		}
		for _, i := range a.Instances {
			if i == nil {
				continue
			}
			addr := cmp.Or(i.IPAddr, i.HostName)
			if addr == "" {
				continue
			}
			ns := cmp.Or(i.Metadata[MetaNamespace], "default")
			var sa string
			if acct := i.Metadata[MetaServiceAccount]; acct != "" && trustDomain != "" {
				sa = "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + acct
			}
			labels := i.Metadata
			loc := locality(i)
			for _, vp := range []struct {
				vips string
				port Port
				name string
				def  registry.Protocol
			}{{i.VIPAddress, i.Port, "http", registry.HTTP}, {i.SecureVIPAddress, i.SecurePort, "https", registry.HTTPS}} {
				if !vp.port.Enabled || vp.port.Number <= 0 || vp.port.Number > 65535 {
					continue
				}
				proto := vp.def
				if vp.name == "http" && i.Metadata[MetaProtocol] != "" {
					if p := registry.ParseProtocol(i.Metadata[MetaProtocol]); p != registry.Unknown {
						proto = p
					}
				}
				port := registry.Port{Name: vp.name, Number: uint32(vp.port.Number), Protocol: proto}
				for _, host := range strings.Split(vp.vips, ",") {
					host = strings.ToLower(strings.TrimSpace(host))
					if host == "" {
						continue
					}
					s := byHost[host]
					if s == nil {
						s = &svc{s: &registry.Service{Hostname: host, Namespace: ns, Resolution: registry.ResolutionStatic, ExportTo: []string{"*"}, Registry: "eureka"}}
						byHost[host] = s
					}
					if _, ok := s.s.PortByNumber(port.Number); !ok {
						s.s.Ports = append(s.s.Ports, port)
					}
					if _, err := netip.ParseAddr(addr); err != nil {
						s.s.Resolution = registry.ResolutionDNS
					}
					if sa != "" && !slices.Contains(s.s.ServiceAccounts, sa) {
						s.s.ServiceAccounts = append(s.s.ServiceAccounts, sa)
					}
					if i.Status != StatusUp {
						continue
					}
					s.eps = append(s.eps, &registry.Endpoint{Hostname: host, ServicePort: port.Number, Address: addr, Port: port.Number,
						Labels: labels, Locality: loc, ServiceAccount: sa})
				}
			}
		}
	}
	out := &registry.Snapshot{Endpoints: make(map[string][]*registry.Endpoint, len(byHost))}
	for _, host := range slices.Sorted(maps.Keys(byHost)) {
		s := byHost[host]
		slices.SortFunc(s.s.Ports, func(a, b registry.Port) int { return cmp.Compare(a.Number, b.Number) })
		slices.Sort(s.s.ServiceAccounts)
		slices.SortFunc(s.eps, func(a, b *registry.Endpoint) int {
			return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
		})
		out.Services = append(out.Services, s.s)
		if len(s.eps) > 0 {
			out.Endpoints[host] = s.eps
		}
	}
	return out
}

// locality is region/zone: an Amazon instance's availability zone (its
// region is the zone less its last letter), else metadata region and zone.
func locality(i *Instance) string {
	if az := i.DataCenterInfo.Metadata["availability-zone"]; az != "" && len(az) > 1 {
		return az[:len(az)-1] + "/" + az
	}
	region, zone := i.Metadata["region"], i.Metadata["zone"]
	switch {
	case region != "" && zone != "":
		return region + "/" + zone
	case region != "":
		return region
	}
	return ""
}
