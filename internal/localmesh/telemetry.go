package localmesh

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// meshConfigYAML is the MeshConfig `mast up` gives mastd: access logs on,
// in Istio's default TEXT format, to each proxy's log (and a JSON provider,
// stdout-json, for Telemetry resources); every request traced (once a
// collector is configured: the jaeger addon).
const meshConfigYAML = `# MeshConfig written by mast up (Istio's mesh ConfigMap format).
accessLogFile: /dev/stdout
accessLogEncoding: TEXT
defaultConfig:
  tracing:
    sampling: 100
`

// jsonLogProvider is an access log provider Telemetry resources can name:
// a JSON line per request (a subset of Istio's JSON format's keys, which
// `mast why` reads too) to each proxy's log.
const jsonLogProvider = `- name: stdout-json
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat:
      labels:
        start_time: "%START_TIME%"
        method: "%REQ(:METHOD)%"
        path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"
        protocol: "%PROTOCOL%"
        response_code: "%RESPONSE_CODE%"
        response_flags: "%RESPONSE_FLAGS%"
        request_id: "%REQ(X-REQUEST-ID)%"
        upstream_cluster: "%UPSTREAM_CLUSTER_RAW%"
        log_provider: stdout-json
`

// writeMeshConfig writes the local mesh's MeshConfig and returns its path.
func writeMeshConfig(stateDir string, addons []string, extra string) (string, error) {
	p := filepath.Join(stateDir, "mesh.yaml")
	text := meshConfigYAML + "extensionProviders:\n" + jsonLogProvider
	jaeger := slices.Contains(addons, AddonJaeger)
	if jaeger {
		text += jaegerProviders + jaegerDefaults
	}
	if err := os.WriteFile(p, []byte(text+extra), 0o644); err != nil {
		return "", fmt.Errorf("mesh config: %w", err)
	}
	return p, nil
}

// Addon names accepted by `mast up --addons`.
const (
	AddonPrometheus = "prometheus"
	AddonJaeger     = "jaeger"
)

// PrometheusAddr is where the Prometheus addon serves.
const PrometheusAddr = "127.0.0.1:9090"

// ParseAddons checks a comma-separated addon list.
func ParseAddons(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, a := range strings.Split(s, ",") {
		switch a = strings.TrimSpace(a); a {
		case AddonPrometheus, AddonJaeger:
			out = append(out, a)
		default:
			return nil, fmt.Errorf("--addons: %q is not an addon (prometheus, jaeger)", a)
		}
	}
	return out, nil
}

// prometheusBinary finds Prometheus, or says how to install it.
func prometheusBinary() (string, error) {
	p, err := exec.LookPath("prometheus")
	if err != nil {
		return "", fmt.Errorf("the prometheus addon needs Prometheus: install it with `apt-get install -y prometheus` (Debian/Ubuntu) or put a prometheus binary on PATH")
	}
	return p, nil
}

// scrapeTarget is one endpoint Prometheus scrapes.
type scrapeTarget struct {
	addr, pod, namespace string
}

// PrometheusConfig renders a scrape configuration for the mesh: every
// proxy's /stats/prometheus on 15090 (Istio's envoy-stats job) and mastd's
// /metrics (Istio's pilot job).
func PrometheusConfig(procs []Proc, monitoringAddr string) string {
	var targets []scrapeTarget
	for _, p := range procs {
		if p.Program != "mast-proxy" || p.Admin == "" {
			continue
		}
		host, _, err := net.SplitHostPort(p.Admin)
		if err != nil {
			continue
		}
		pod, ns := strings.TrimSuffix(p.Name, "-sidecar"), "default"
		if parts := strings.Split(p.ProxyID, "~"); len(parts) == 4 {
			if i := strings.LastIndexByte(parts[2], '.'); i >= 0 {
				pod, ns = parts[2][:i], parts[2][i+1:]
			}
		}
		targets = append(targets, scrapeTarget{addr: net.JoinHostPort(host, "15090"), pod: pod, namespace: ns})
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].addr < targets[j].addr })
	var b strings.Builder
	b.WriteString("# Written by mast up --addons prometheus.\nglobal:\n  scrape_interval: 5s\n  evaluation_interval: 5s\nscrape_configs:\n")
	b.WriteString("- job_name: envoy-stats\n  metrics_path: /stats/prometheus\n  static_configs:\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "  - targets: ['%s']\n    labels: {pod: '%s', namespace: '%s'}\n", t.addr, t.pod, t.namespace)
	}
	fmt.Fprintf(&b, "- job_name: pilot\n  static_configs:\n  - targets: ['%s']\n    labels: {app: istiod}\n", monitoringAddr)
	return b.String()
}

// prometheusProc writes the addon's configuration and returns its process.
func prometheusProc(stateDir string, procs []Proc, monitoringAddr string) (Proc, string, error) {
	dir := filepath.Join(stateDir, "addons", "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return Proc{}, "", err
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(PrometheusConfig(procs, monitoringAddr)), 0o644); err != nil {
		return Proc{}, "", err
	}
	return Proc{Name: "prometheus", Program: "prometheus", Args: []string{
		"--config.file=" + cfgPath, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + PrometheusAddr, "--storage.tsdb.retention.time=1d",
	}}, cfgPath, nil
}

// startAddons launches the requested addons with launch and prints where
// they are.
func startAddons(cfg *Config, procs []Proc, launch func(Proc) error, out io.Writer) error {
	for _, a := range cfg.Addons {
		switch a {
		case AddonPrometheus:
			bin, err := prometheusBinary()
			if err != nil {
				return err
			}
			p, cfgPath, err := prometheusProc(cfg.StateDir, procs, cfg.MonitoringAddr)
			if err != nil {
				return fmt.Errorf("prometheus addon: %w", err)
			}
			if cfg.Programs == nil {
				cfg.Programs = map[string]string{}
			}
			cfg.Programs["prometheus"] = bin
			if err := launch(p); err != nil {
				return fmt.Errorf("prometheus addon: %w", err)
			}
			fmt.Fprintf(out, "  Prometheus       http://%s  (scrape configuration %s)\n", PrometheusAddr, cfgPath)
		case AddonJaeger:
			bin, err := jaegerBinary()
			if err != nil {
				return err
			}
			if cfg.Programs == nil {
				cfg.Programs = map[string]string{}
			}
			cfg.Programs["jaeger"] = bin
			if err := launch(jaegerProc()); err != nil {
				return fmt.Errorf("jaeger addon: %w", err)
			}
			fmt.Fprintf(out, "  Jaeger           http://%s  (OTLP gRPC %s, Zipkin %s)\n", JaegerUIAddr, JaegerOTLPAddr, JaegerZipkinAddr)
		}
	}
	return nil
}
