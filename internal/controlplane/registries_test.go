package controlplane

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// fixedWatcher is a registry.Watcher whose snapshot the test replaces.
type fixedWatcher struct {
	name string
	snap *registry.Snapshot
	st   registry.Status
}

func (w *fixedWatcher) Name() string                                 { return w.name }
func (w *fixedWatcher) Snapshot() *registry.Snapshot                 { return w.snap }
func (w *fixedWatcher) Status() registry.Status                      { return w.st }
func (w *fixedWatcher) Run(ctx context.Context, notify func()) error { <-ctx.Done(); return nil }

func watcherSnap(host, addr string) *registry.Snapshot {
	return &registry.Snapshot{
		Services:  []*registry.Service{{Hostname: host, Namespace: "default", Ports: []registry.Port{{Name: "http", Number: 80, Protocol: registry.HTTP}}, Registry: "consul"}},
		Endpoints: map[string][]*registry.Endpoint{host: {{Hostname: host, ServicePort: 80, Address: addr, Port: 80}}},
	}
}

// A watcher's change is merged with the ServiceEntries: an endpoint change
// is an EDS push for its host, a service change a full push; a hostname
// ServiceEntries have stays theirs and is reported in /debug/registryz.
func TestRegistriesChanged(t *testing.T) {
	w := &fixedWatcher{name: "consul", snap: watcherSnap("r.service.consul", "10.1.0.1"), st: registry.Status{Name: "consul", Synced: true}}
	p := &pipeline{mesh: model.DefaultMeshConfig(), log: slog.Default(), watchers: []registry.Watcher{w}}
	if req := p.registriesChanged(); req != nil {
		t.Fatalf("before the first config: %+v", req)
	}
	p.configChanged(snapshot(t, strings.Replace(base, "ADDR", "10.0.0.1", 1)), nil)
	if p.reg.Service("r.service.consul") == nil || p.reg.Service("a.default.svc.cluster.local") == nil {
		t.Fatalf("merged snapshot lacks a registry: %+v", p.reg.Services)
	}
	w.snap = watcherSnap("r.service.consul", "10.1.0.2")
	req := p.registriesChanged()
	if req == nil || req.Full || len(req.EDSHosts) != 1 {
		t.Fatalf("endpoint moved: %+v, want EDS for one host", req)
	}
	if req := p.registriesChanged(); req != nil {
		t.Fatalf("no change: %+v", req)
	}
	w.snap = watcherSnap("a.default.svc.cluster.local", "10.1.0.3")
	if req := p.registriesChanged(); req == nil || !req.Full {
		t.Fatalf("service set changed: %+v, want a full push", req)
	}
	if eps := p.reg.EndpointsFor("a.default.svc.cluster.local", 80); len(eps) != 1 || eps[0].Address != "10.0.0.1" {
		t.Errorf("ServiceEntry's host taken by the watcher: %+v", eps)
	}
	rec := httptest.NewRecorder()
	registryzHandler(p).ServeHTTP(rec, httptest.NewRequest("GET", "/debug/registryz", nil))
	var z Registryz
	if err := json.Unmarshal(rec.Body.Bytes(), &z); err != nil {
		t.Fatal(err)
	}
	if len(z.Registries) != 2 || z.Registries[0].Name != "serviceentry" || z.Registries[0].Services != 1 || z.Registries[1].Name != "consul" {
		t.Errorf("registries %+v", z.Registries)
	}
	if len(z.Conflicts) != 1 || z.Conflicts[0].Hostname != "a.default.svc.cluster.local" || z.Conflicts[0].Owner != "serviceentry" || z.Conflicts[0].Shadowed[0] != "consul" {
		t.Errorf("conflicts %+v", z.Conflicts)
	}
}

// A ServiceEntry's workloadSelector picks a registry's instances: the
// ServiceEntry then names them too, and follows their changes.
func TestServiceEntrySelectsRegistryInstances(t *testing.T) {
	w := &fixedWatcher{name: "consul", snap: watcherSnap("a.service.consul", "10.1.0.1")}
	w.snap.Endpoints["a.service.consul"][0].Labels = map[string]string{"app": "a", "version": "v2"}
	p := &pipeline{mesh: model.DefaultMeshConfig(), log: slog.Default(), watchers: []registry.Watcher{w}}
	p.configChanged(snapshot(t, strings.Replace(base, "ADDR", "10.0.0.1", 1)), nil)
	eps := p.reg.EndpointsFor("a.default.svc.cluster.local", 80)
	if len(eps) != 2 || eps[0].Address != "10.0.0.1" || eps[1].Address != "10.1.0.1" || eps[1].Labels["version"] != "v2" {
		t.Fatalf("endpoints %+v %+v", eps[0], eps[len(eps)-1])
	}
	w.snap = watcherSnap("a.service.consul", "10.1.0.2")
	w.snap.Endpoints["a.service.consul"][0].Labels = map[string]string{"app": "a"}
	req := p.registriesChanged()
	if req == nil || req.Full || len(req.EDSHosts) != 2 {
		t.Fatalf("instance moved: %+v, want EDS for both names", req)
	}
}
