package controlplane

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"log/slog"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

const base = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: a}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a-1, namespace: default}
spec:
  address: ADDR
  labels: {app: a}
`

func snapshot(t *testing.T, yaml string) *config.Snapshot {
	t.Helper()
	rs, problems := config.Load("test.yaml", []byte(yaml))
	if problems.HasErrors() {
		t.Fatal(problems)
	}
	return config.NewSnapshot(rs)
}

func TestConfigChangedPushKinds(t *testing.T) {
	p := &pipeline{mesh: model.DefaultMeshConfig(), log: slog.Default()}
	if req := p.configChanged(snapshot(t, strings.Replace(base, "ADDR", "10.0.0.1", 1)), nil); req == nil || !req.Full {
		t.Fatalf("first snapshot: %+v, want a full push", req)
	}
	// Moving a workload is an endpoint-only change for its host.
	req := p.configChanged(snapshot(t, strings.Replace(base, "ADDR", "10.0.0.2", 1)), kinds(config.WorkloadEntry))
	if req == nil || req.Full || len(req.EDSHosts) != 1 {
		t.Fatalf("workload moved: %+v, want EDS for one host", req)
	}
	if _, ok := req.EDSHosts["a.default.svc.cluster.local"]; !ok {
		t.Fatalf("workload moved: EDS hosts %v", req.EDSHosts)
	}
	// The same snapshot again needs no push.
	if req := p.configChanged(snapshot(t, strings.Replace(base, "ADDR", "10.0.0.2", 1)), kinds(config.WorkloadEntry)); req != nil {
		t.Fatalf("no change: %+v, want nil", req)
	}
	// A change to a service is a full push.
	changed := strings.Replace(strings.Replace(base, "ADDR", "10.0.0.2", 1), "number: 80", "number: 81", 1)
	if req := p.configChanged(snapshot(t, changed), kinds(config.ServiceEntry)); req == nil || !req.Full {
		t.Fatalf("service port changed: %+v, want a full push", req)
	}
}

// TestConfigChangedUsesStoreKinds: with the kinds the store reports, a change
// of WorkloadEntries alone is an endpoint push and any other kind a full one,
// without comparing the snapshots.
func TestConfigChangedUsesStoreKinds(t *testing.T) {
	tests := []struct {
		name     string
		addr     string
		kinds    map[config.Kind]struct{}
		wantFull bool
		wantNil  bool
	}{
		{name: "workload moved", addr: "10.0.0.2", kinds: kinds(config.WorkloadEntry)},
		{name: "workload entry and service entry in one file", addr: "10.0.0.3", kinds: kinds(config.WorkloadEntry, config.ServiceEntry), wantFull: true},
		{name: "virtual service", addr: "10.0.0.3", kinds: kinds(config.VirtualService), wantFull: true},
		{name: "workload entry rewritten unchanged", addr: "10.0.0.3", kinds: kinds(config.WorkloadEntry), wantNil: true},
	}
	p := &pipeline{mesh: model.DefaultMeshConfig(), log: slog.Default()}
	p.configChanged(snapshot(t, strings.Replace(base, "ADDR", "10.0.0.1", 1)), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := p.configChanged(snapshot(t, strings.Replace(base, "ADDR", tt.addr, 1)), tt.kinds)
			switch {
			case tt.wantNil:
				if req != nil {
					t.Fatalf("got %+v, want no push", req)
				}
			case req == nil || req.Full != tt.wantFull:
				t.Fatalf("got %+v, want full=%v", req, tt.wantFull)
			case !tt.wantFull:
				if _, ok := req.EDSHosts["a.default.svc.cluster.local"]; !ok || len(req.EDSHosts) != 1 {
					t.Fatalf("EDS hosts %v, want a's", req.EDSHosts)
				}
			}
		})
	}
}

// kinds is the set of kinds a store update reports.
func kinds(ks ...config.Kind) map[config.Kind]struct{} {
	m := map[config.Kind]struct{}{}
	for _, k := range ks {
		m[k] = struct{}{}
	}
	return m
}

func TestConfigEventsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := &pipeline{mesh: model.DefaultMeshConfig(), log: slog.Default(), events: newConfigEvents(reg)}
	p.configChanged(snapshot(t, strings.Replace(base, "ADDR", "10.0.0.1", 1)), nil)
	p.configChanged(snapshot(t, strings.Replace(base, "ADDR", "10.0.0.2", 1)), kinds(config.WorkloadEntry))
	if got := testutil.ToFloat64(p.events.WithLabelValues("WorkloadEntry", "update")); got != 1 {
		t.Fatalf("pilot_k8s_cfg_events{type=WorkloadEntry,event=update} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(p.events.WithLabelValues("WorkloadEntry", "add")); got != 0 {
		t.Fatalf("add = %v, want 0", got)
	}
}
