package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/mast-mesh/mast/internal/proxy/dataplane"
	"github.com/mast-mesh/mast/internal/proxy/xdswire"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
	"github.com/mast-mesh/mast/internal/telemetry/peer"
	"github.com/mast-mesh/mast/internal/telemetry/reporter"
	"github.com/mast-mesh/mast/internal/telemetry/spans"
)

// telemetryFlags are the proxy's metrics endpoints and the application's
// metrics for the merge.
type telemetryFlags struct {
	stats, merged, appMetrics, annotations, appProbers string
	maxSeries                                          int
}

func (t *telemetryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.stats, "stats-addr", "auto", `serve /stats/prometheus (Envoy stats and Istio's standard metrics) here, Istio's 15090; "auto": PROXY_IP:15090 when the proxy has an IP (a busy port is then only a warning); "" for none`)
	fs.StringVar(&t.merged, "merged-metrics-addr", "auto", `serve the application's metrics merged with the proxy's at /stats/prometheus (and /healthz/ready) here, Istio's 15020; "auto" as for --stats-addr`)
	fs.StringVar(&t.appMetrics, "app-metrics-url", "", "the application's metrics to merge, e.g. http://127.0.0.1:9080/metrics (else from --prometheus-annotations)")
	fs.StringVar(&t.annotations, "prometheus-annotations", os.Getenv("ISTIO_PROMETHEUS_ANNOTATIONS"),
		`the workload's prometheus.io annotations as Istio's agent gets them (ISTIO_PROMETHEUS_ANNOTATIONS), e.g. {"scrape":"true","port":"9080","path":"/metrics"}`)
	fs.StringVar(&t.appProbers, "app-probers", os.Getenv("ISTIO_KUBE_APP_PROBERS"),
		`application probes to serve under /app-health/ on the merged metrics address, as Istio's injector writes them (ISTIO_KUBE_APP_PROBERS)`)
	fs.IntVar(&t.maxSeries, "max-metric-series", 10000, "cap on distinct label sets of the standard metrics (HTTP and TCP each); the rest is counted in istio_metric_series_overflow_total")
}

// apply builds the reporter and sets the metrics endpoints in cfg.
func (t *telemetryFlags) apply(node *xdswire.Node, trustDomain string, cfg *dataplane.Config, stdout io.Writer, log *slog.Logger) error {
	local := peer.FromNode(node.ID, node.Metadata)
	if local.Cluster == "" {
		local.Cluster = "Kubernetes" // Istio's default CLUSTER_ID
	}
	cfg.Telemetry = reporter.New(reporter.Config{Local: local, TrustDomain: trustDomain, MaxSeries: t.maxSeries, Stdout: stdout,
		Logger: log.With("component", "telemetry")})
	// Spans are tagged with the node and, for Zipkin, named by the node's
	// cluster (Istio's service-cluster, "app.namespace"), as Envoy does.
	cfg.Tracing = spans.Options{NodeID: node.ID, Zone: node.Locality.Zone, ServiceName: node.Cluster}
	if cfg.Tracing.ServiceName == "" && local.CanonicalService != "" {
		cfg.Tracing.ServiceName = local.CanonicalService + "." + local.Namespace
	}
	var auto1, auto2 bool
	cfg.StatsAddr, auto1 = resolveAddr(node, t.stats, "15090")
	cfg.MergedAddr, auto2 = resolveAddr(node, t.merged, "15020")
	cfg.StatsBestEffort = auto1 || auto2
	cfg.AppMetricsURL = t.appMetrics
	probers, err := dataplane.ParseAppProbers(t.appProbers)
	if err != nil {
		return fmt.Errorf("--app-probers (ISTIO_KUBE_APP_PROBERS): %w", err)
	}
	cfg.AppProbers = probers
	if cfg.AppMetricsURL == "" && t.annotations != "" {
		u, err := appMetricsURL(t.annotations)
		if err != nil {
			return fmt.Errorf("--prometheus-annotations: %w", err)
		}
		cfg.AppMetricsURL = u
	}
	return nil
}

// resolveAddr turns a metrics address flag into an address: "auto" is
// the proxy's first INSTANCE_IPS at port (true when so resolved).
func resolveAddr(node *xdswire.Node, v, port string) (string, bool) {
	if v != "auto" {
		return v, false
	}
	ip := node.MetaString("INSTANCE_IPS")
	if ip == "" || net.ParseIP(ip) == nil {
		return "", false
	}
	return net.JoinHostPort(ip, port), true
}

// announce adds where the proxy serves its stats to the node metadata
// (metrics.MetaStatsAddr), so that the control plane's dashboard can
// scrape Istio's standard metrics without a Prometheus. It must run before
// the node is shared with other goroutines.
func (t *telemetryFlags) announce(node *xdswire.Node) {
	addr, _ := resolveAddr(node, t.stats, "15090")
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		return
	}
	node.SetMeta(metrics.MetaStatsAddr, addr)
}

// appMetricsURL applies Istio's prometheus.io annotation semantics: scrape
// unless "false", path /metrics and the port named (required).
func appMetricsURL(js string) (string, error) {
	var a map[string]string
	if err := json.Unmarshal([]byte(js), &a); err != nil {
		return "", err
	}
	if a["scrape"] == "false" {
		return "", nil
	}
	port := a["port"]
	if port == "" {
		return "", fmt.Errorf(`"port": missing`)
	}
	path := a["path"]
	if path == "" {
		path = "/metrics"
	}
	if path[0] != '/' {
		path = "/" + path
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + path, nil
}
