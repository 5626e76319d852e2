package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mast-mesh/mast/internal/registry"
)

// fakeConsul answers the two endpoints the registry reads with Consul's
// blocking-query protocol (X-Consul-Index, ?index=, ?wait=). Its answers
// can be broken on purpose.
type fakeConsul struct {
	mu       sync.Mutex
	index    uint64
	changed  chan struct{} // closed and replaced at each change
	services map[string][]*api.ServiceEntry
	broken   string // "": healthy; "500", "truncated", "huge", "types"
	requests int
	open     int // connections open now, and the most ever open at once
	peak     int
}

// connState counts the registry's connections (http.Server.ConnState).
func (f *fakeConsul) connState(_ net.Conn, s http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch s {
	case http.StateNew:
		f.open++
		f.peak = max(f.peak, f.open)
	case http.StateClosed, http.StateHijacked:
		f.open--
	}
}

func newFakeConsul() *fakeConsul {
	return &fakeConsul{index: 1, changed: make(chan struct{}), services: map[string][]*api.ServiceEntry{}}
}

func (f *fakeConsul) set(name string, entries ...*api.ServiceEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if entries == nil {
		delete(f.services, name)
	} else {
		f.services[name] = entries
	}
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) breakWith(mode string) {
	f.mu.Lock()
	f.broken = mode
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeConsul) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	idx, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	f.mu.Lock()
	f.requests++
	if idx >= f.index && wait > 0 {
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	switch f.broken {
	case "500":
		http.Error(w, "rpc error: No cluster leader", http.StatusInternalServerError)
		return
	case "truncated":
		w.Header().Set("X-Consul-Index", strconv.FormatUint(f.index, 10))
		io.WriteString(w, `[{"Node":{"Node":"n1","Address":"10.`)
		return
	case "null-definition": // panics consul/api v1.34.5's decoder
		w.Header().Set("X-Consul-Index", strconv.FormatUint(f.index, 10))
		io.WriteString(w, `[{"Node":{"Address":"10.0.0.1"},"Service":{"Port":80},"Checks":[{"Definition":null}]}]`)
		return
	case "types":
		w.Header().Set("X-Consul-Index", strconv.FormatUint(f.index, 10))
		io.WriteString(w, `{"Node":[1,2],"Service":"x"}`)
		return
	case "huge":
		w.Header().Set("X-Consul-Index", strconv.FormatUint(f.index, 10))
		io.WriteString(w, `[{"Node":{"Node":"`+strings.Repeat("a", 2<<20)+`"}}]`)
		return
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(f.index, 10))
	var body any
	switch {
	case r.URL.Path == "/v1/catalog/services":
		names := map[string][]string{"consul": {}}
		for n := range f.services {
			names[n] = []string{}
		}
		body = names
	case r.URL.Path == "/v1/health/state/any":
		checks := api.HealthChecks{}
		for name, entries := range f.services {
			for _, e := range entries {
				for _, c := range e.Checks {
					c := *c
					c.Node = e.Node.Node
					if c.CheckID != "serfHealth" {
						c.ServiceName, c.ServiceID = name, e.Service.ID
					}
					checks = append(checks, &c)
				}
			}
		}
		body = checks
	case strings.HasPrefix(r.URL.Path, "/v1/health/service/"):
		entries := f.services[strings.TrimPrefix(r.URL.Path, "/v1/health/service/")]
		if entries == nil {
			entries = []*api.ServiceEntry{}
		}
		body = entries
	default:
		http.NotFound(w, r)
		return
	}
	json.NewEncoder(w).Encode(body)
}

func instance(id, addr string, port int, status string, tags []string, meta map[string]string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "node-" + id, Address: addr, Datacenter: "dc1"},
		Service: &api.AgentService{ID: id, Service: strings.Split(id, "-")[0], Tags: tags, Meta: meta, Port: port, Weights: api.AgentWeights{Passing: 1, Warning: 1}},
		Checks:  api.HealthChecks{{CheckID: "serfHealth", Status: api.HealthPassing}, {CheckID: "service:" + id, Status: status}},
	}
}

// running starts a registry against f and returns a function that waits
// until the registry's snapshot satisfies ok.
func running(t *testing.T, f *fakeConsul, mod func(*Config)) (*Registry, func(what string, ok func(*registry.Snapshot, registry.Status) bool)) {
	t.Helper()
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ConnState = f.connState
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := Config{Addr: srv.URL, TrustDomain: "cluster.local", WaitTime: 2 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxResponseBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	notified := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func() {
			select {
			case notified <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r, func(what string, ok func(*registry.Snapshot, registry.Status) bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !ok(r.Snapshot(), r.Status()) {
			select {
			case <-notified:
			case <-time.After(20 * time.Millisecond): // status changes do not notify
			case <-deadline:
				t.Fatalf("%s: never happened; snapshot %s, status %+v", what, render(r.Snapshot()), r.Status())
			}
		}
	}
}

// render is a snapshot as one line: host[ports]{endpoints}.
func render(s *registry.Snapshot) string {
	var b strings.Builder
	for _, svc := range s.Services {
		fmt.Fprintf(&b, "%s/%s[", svc.Hostname, svc.Namespace)
		for _, p := range svc.Ports {
			fmt.Fprintf(&b, "%s:%d:%s ", p.Name, p.Number, p.Protocol)
		}
		b.WriteString("]{")
		for _, e := range s.Endpoints[svc.Hostname] {
			fmt.Fprintf(&b, "%s:%d v=%s %s;", e.Address, e.Port, e.Labels["version"], e.Locality)
		}
		b.WriteString("} ")
	}
	return strings.TrimSpace(b.String())
}

func has(want string) func(*registry.Snapshot, registry.Status) bool {
	return func(s *registry.Snapshot, _ registry.Status) bool { return render(s) == want }
}

func TestRegistryFollowsCatalogAndHealth(t *testing.T) {
	f := newFakeConsul()
	f.set("reviews",
		instance("reviews-1", "10.0.0.1", 9080, api.HealthPassing, []string{"version|v1"}, map[string]string{"protocol": "http"}),
		instance("reviews-2", "10.0.0.2", 9080, api.HealthPassing, []string{"version=v2"}, map[string]string{"protocol": "http"}))
	r, wait := running(t, f, nil)
	wait("two instances", has("reviews.service.consul/default[http:9080:HTTP ]{10.0.0.1:9080 v=v1 dc1;10.0.0.2:9080 v=v2 dc1;}"))
	if st := r.Status(); !st.Synced || st.Stale || st.Services != 1 || st.Endpoints != 2 {
		t.Errorf("status %+v", st)
	}

	// A failing check removes the instance; a warning too, by default.
	f.set("reviews",
		instance("reviews-1", "10.0.0.1", 9080, api.HealthCritical, []string{"version|v1"}, map[string]string{"protocol": "http"}),
		instance("reviews-2", "10.0.0.2", 9080, api.HealthWarning, []string{"version=v2"}, map[string]string{"protocol": "http"}))
	wait("unhealthy instances removed", has("reviews.service.consul/default[http:9080:HTTP ]{}"))

	// A new service appears; a deregistered one disappears.
	f.set("ratings", instance("ratings-1", "10.0.0.3", 9080, api.HealthPassing, nil, nil))
	wait("ratings added", has("ratings.service.consul/default[tcp:9080:TCP ]{10.0.0.3:9080 v= dc1;} reviews.service.consul/default[http:9080:HTTP ]{}"))
	f.set("reviews")
	wait("reviews removed", has("ratings.service.consul/default[tcp:9080:TCP ]{10.0.0.3:9080 v= dc1;}"))
}

// Many services are followed over a bounded number of connections: two
// blocking queries and MaxFetches short fetches, not one blocking query per
// service (a Consul agent refuses more than 200 connections from one client
// by default). A change only the catalog sees (an instance's new address,
// its checks unchanged) and one only the checks see are both followed.
func TestRegistryBoundedConnections(t *testing.T) {
	f := newFakeConsul()
	const services = 300
	for i := range services {
		name := fmt.Sprintf("svc%03d", i)
		f.set(name, instance(name+"-1", fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), 9080, api.HealthPassing, nil, map[string]string{"protocol": "http"}))
	}
	r, wait := running(t, f, func(c *Config) { c.MaxFetches = 4 })
	wait("every service", func(s *registry.Snapshot, st registry.Status) bool { return st.Synced && len(s.Services) == services })

	f.set("svc007", instance("svc007-1", "10.9.9.9", 9080, api.HealthPassing, nil, map[string]string{"protocol": "http"}))
	wait("catalog-only change", func(s *registry.Snapshot, _ registry.Status) bool {
		eps := s.Endpoints["svc007.service.consul"]
		return len(eps) == 1 && eps[0].Address == "10.9.9.9"
	})
	f.set("svc123", instance("svc123-1", "10.1.0.124", 9080, api.HealthCritical, nil, map[string]string{"protocol": "http"}))
	wait("health-only change", func(s *registry.Snapshot, _ registry.Status) bool {
		_, ok := s.Endpoints["svc123.service.consul"]
		return !ok
	})
	f.set("svc200")
	wait("deregistered", func(s *registry.Snapshot, _ registry.Status) bool { return len(s.Services) == services-1 })
	if st := r.Status(); st.Stale || st.Services != services-1 {
		t.Errorf("status %+v", st)
	}
	f.mu.Lock()
	peak := f.peak
	f.mu.Unlock()
	if peak > 4+2 {
		t.Errorf("%d connections open at once to follow %d services, want at most MaxFetches+2 = 6", peak, services)
	}
}

func TestRegistryAllowWarning(t *testing.T) {
	f := newFakeConsul()
	f.set("reviews", instance("reviews-1", "10.0.0.1", 9080, api.HealthWarning, nil, map[string]string{"protocol": "http"}))
	_, wait := running(t, f, func(c *Config) { c.AllowWarning = true })
	wait("warning kept", has("reviews.service.consul/default[http:9080:HTTP ]{10.0.0.1:9080 v= dc1;}"))
}

// Bad answers and an unreachable Consul keep the last known services and
// mark the registry stale; a good answer afterwards is followed again.
func TestRegistryKeepsServicesOnBadAnswers(t *testing.T) {
	f := newFakeConsul()
	f.set("reviews", instance("reviews-1", "10.0.0.1", 9080, api.HealthPassing, nil, map[string]string{"protocol": "http"}))
	r, wait := running(t, f, nil)
	const want = "reviews.service.consul/default[http:9080:HTTP ]{10.0.0.1:9080 v= dc1;}"
	wait("registered", has(want))
	for _, mode := range []string{"truncated", "types", "null-definition", "huge", "500"} {
		t.Run(mode, func(t *testing.T) {
			before := r.Snapshot()
			f.breakWith(mode)
			wait("stale", func(s *registry.Snapshot, st registry.Status) bool { return st.Stale && st.LastError != "" })
			if r.Snapshot() != before {
				t.Errorf("snapshot changed on a bad answer: %s", render(r.Snapshot()))
			}
			f.breakWith("")
			wait("fresh again", func(s *registry.Snapshot, st registry.Status) bool { return !st.Stale })
			if got := render(r.Snapshot()); got != want {
				t.Errorf("after recovery: %s", got)
			}
		})
	}
}

func TestRegistryKeepsServicesWhileConsulIsDown(t *testing.T) {
	f := newFakeConsul()
	f.set("reviews", instance("reviews-1", "10.0.0.1", 9080, api.HealthPassing, nil, map[string]string{"protocol": "http"}))
	srv := httptest.NewServer(f)
	r, err := New(Config{Addr: srv.URL, WaitTime: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx, func() {})
	for r.Status().Endpoints != 1 {
		time.Sleep(10 * time.Millisecond)
	}
	srv.CloseClientConnections()
	srv.Close()
	for !r.Status().Stale {
		time.Sleep(10 * time.Millisecond)
	}
	if got := render(r.Snapshot()); got != "reviews.service.consul/default[http:9080:HTTP ]{10.0.0.1:9080 v= dc1;}" {
		t.Errorf("Consul down: %s", got)
	}
}

// Errors back off, doubling up to the maximum; answers that come at once
// without a change wait too, so no server can make a watch spin.
func TestBackoffAndIndexRules(t *testing.T) {
	r := &Registry{cfg: Config{MinBackoff: 8 * time.Millisecond, MaxBackoff: 64 * time.Millisecond}}
	b := r.newBackoff()
	var curs []time.Duration
	for range 6 {
		curs = append(curs, b.cur)
		b.cur = min(b.cur*2, b.max) // what wait does after sleeping
	}
	if fmt.Sprint(curs) != "[8ms 16ms 32ms 64ms 64ms 64ms]" {
		t.Errorf("backoff steps %v", curs)
	}
	ctx := context.Background()
	for _, tc := range []struct{ prev, last, want uint64 }{{0, 5, 5}, {5, 7, 7}, {7, 3, 0}, {0, 0, 1}, {5, 5, 5}} {
		if got := r.nextIndex(ctx, tc.prev, tc.last, time.Now().Add(-time.Second)); got != tc.want {
			t.Errorf("nextIndex(%d, %d) = %d, want %d", tc.prev, tc.last, got, tc.want)
		}
	}
	start := time.Now()
	r.nextIndex(ctx, 5, 5, start)
	if time.Since(start) < r.cfg.MinBackoff {
		t.Error("an immediate answer without a change did not wait")
	}
}
