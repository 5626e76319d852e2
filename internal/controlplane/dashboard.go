package controlplane

import (
	"flag"
	"log/slog"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/store"
	"github.com/mast-mesh/mast/internal/dashboard"
	"github.com/mast-mesh/mast/internal/pilot/ads"
)

// DashboardConfig configures the web UI mastd serves at /ui/ on its
// monitoring port, guarded like the read-only /debug pages.
type DashboardConfig struct {
	Enabled bool
	// ScrapeInterval is how often mastd scrapes every connected proxy's
	// standard metrics (the address each proxy announces in its node
	// metadata); Window is the span of the rates shown.
	ScrapeInterval, Window time.Duration
}

func (c *DashboardConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "dashboard", true, "serve the dashboard at /ui/ on --monitoring-addr")
	fs.DurationVar(&c.ScrapeInterval, "dashboard-scrape-interval", 2*time.Second, "how often the dashboard scrapes each connected proxy's /stats/prometheus")
	fs.DurationVar(&c.Window, "dashboard-window", 10*time.Second, "the span over which the dashboard computes request rates and latency percentiles")
}

// newDashboard builds the dashboard over mastd's live state.
func newDashboard(cfg Config, adsServer *ads.Server, fs *store.File, authority *ca.CA, log *slog.Logger) *dashboard.Dashboard {
	dc := dashboard.Config{
		Proxies:        adsServer.Proxies,
		Status:         adsServer.Status,
		PushContext:    adsServer.PushContext,
		Store:          func() (*config.Snapshot, store.Status) { return fs.Snapshot(), fs.Status() },
		TrustDomain:    cfg.Mesh.TrustDomain,
		ScrapeInterval: cfg.Dashboard.ScrapeInterval,
		Window:         cfg.Dashboard.Window,
		Logger:         log,
	}
	if authority != nil {
		dc.Certificates = func() []dashboard.Certificate {
			var out []dashboard.Certificate
			for _, i := range authority.Issued() {
				out = append(out, dashboard.Certificate(i))
			}
			return out
		}
	}
	return dashboard.New(dc)
}
