package controlplane

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/kube/autoregister"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/pilot/workloadhealth"
)

// healthReports takes proxies' health reports (the readiness probes their
// agents run) to the WorkloadEntries they control, and pushes the change.
type healthReports struct {
	table   *workloadhealth.Table
	sources *configSources
	// refresh re-merges the configuration with the new health and pushes.
	refresh func()
	log     *slog.Logger
}

// entryName is the WorkloadEntry p reports for: its auto-registered one, or
// the one its WORKLOAD_ENTRY metadata names; "" for none.
func entryName(p *model.Proxy) string {
	if g := p.Metadata[autoregister.MetadataGroup]; g != "" {
		name, err := autoregister.EntryName(g, p)
		if err != nil {
			return ""
		}
		return name
	}
	return p.Metadata[workloadhealth.MetadataWorkloadEntry]
}

func (h *healthReports) report(ctx context.Context, p *model.Proxy, healthy bool, msg string) {
	name := entryName(p)
	log := h.log.With("proxy", p.ID, "workloadentry", p.Namespace+"/"+name)
	if name == "" {
		log.Warn("health report ignored: the proxy names no WorkloadEntry (ISTIO_META_AUTO_REGISTER_GROUP or ISTIO_META_WORKLOAD_ENTRY)")
		return
	}
	if !tlsPeer(ctx) {
		log.Warn("health report ignored: the stream has no workload certificate (connect to the TLS xDS port)")
		return
	}
	if snap := h.sources.merged(); snap != nil {
		if r, ok := snap.Get(config.Key{Kind: config.WorkloadEntry, Namespace: p.Namespace, Name: name}); ok {
			if err := workloadhealth.Owns(r, p.IPAddresses, p.ServiceAccount); err != nil {
				log.Warn("health report ignored", "error", err)
				return
			}
		}
	}
	if !h.table.Report(p, name, healthy, msg, time.Now()) {
		return
	}
	if healthy {
		log.Info("workload healthy: its readiness probe passes")
	} else {
		log.Warn("workload unhealthy: its endpoints are withdrawn", "reason", msg)
	}
	h.refresh()
}

func (h *healthReports) disconnected(p *model.Proxy) {
	if name := entryName(p); name != "" && h.table.Forget(p, name) {
		h.refresh()
	}
}

// serveHealthz serves /debug/workloadhealthz: the Healthy condition of every
// WorkloadEntry whose proxy reported, as JSON.
func (h *healthReports) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(h.table.Conditions())
}
