// Package admin serves mast-proxy's admin interface (Envoy's paths):
// /ready, /server_info (Envoy's, with GOMAXPROCS as concurrency), /config_dump (with the bootstrap and the SDS secrets, private
// keys redacted; no cross-origin reads), /clusters, /listeners, /stats, /stats/prometheus,
// /logging and /quitquitquit. It binds to loopback only (Listen refuses
// anything else), and the endpoints that change state (/quitquitquit,
// /logging?level=) take POST only and refuse cross-origin browser requests;
// every path checks Host against DNS rebinding (see adminguard).
//
// /stats/prometheus?filter=REGEX returns only the metric families whose
// name matches the RE2 expression (FamilyFilter); unlike Envoy, whose
// filter matches its internal stat names (cluster.outbound|80||a.upstream_rq_total),
// Mast's matches the Prometheus family name it emits (envoy_cluster_upstream_rq_total).
// A bad expression is a 400 naming the parameter. Envoy's usedonly is not
// implemented (ignored).
package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/adminguard"
	"github.com/mast-mesh/mast/internal/proxy/httpproxy"
	"github.com/mast-mesh/mast/internal/proxy/listener"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// Source is what the admin interface reports on.
type Source interface {
	Ready() bool
	Snapshot() *xdsparse.Snapshot
	Clusters() map[string]*upstream.Cluster
	Listeners() []listener.Info
	HTTPStats() *httpproxy.Stats
	XDSState() (connected bool, acks, nacks int64)
	// Secrets lists the SDS secrets the proxy holds or waits for (never a
	// private key); Bootstrap is its start-up configuration.
	Secrets() []Secret
	Bootstrap() Bootstrap
	Quit()
}

// Listen binds the admin listener on addr, which must be a loopback IP
// address or localhost: the admin interface is never reachable from the
// network, whatever --admin-addr says.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin: address %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("admin: address %q is not loopback; the admin interface binds only to 127.0.0.0/8, ::1 or localhost", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", addr, err)
	}
	return ln, nil
}

// Handler returns the admin HTTP handler. level may be nil.
func Handler(src Source, level *slog.LevelVar) http.Handler {
	var guard adminguard.Options
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if src.Ready() {
			fmt.Fprintln(w, "LIVE")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "PRE_INITIALIZING")
	})
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, r *http.Request) {
		// The dump shows certificates (never keys): no cross-origin reads
		// at all, not even with an Origin a browser's "simple" request sends.
		if err := adminguard.CheckOrigin(r); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.Header().Set("content-type", "application/json")
		w.Header().Set("cache-control", "no-store")
		w.Write(ConfigDump(src.Snapshot(), src.Bootstrap(), src.Secrets()))
	})
	mux.HandleFunc("/server_info", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		w.Write(serverInfo(src.Ready(), src.Bootstrap(), time.Now()))
	})
	mux.HandleFunc("/clusters", func(w http.ResponseWriter, r *http.Request) { writeClusters(w, src.Clusters()) })
	mux.HandleFunc("/listeners", func(w http.ResponseWriter, r *http.Request) {
		ls := src.Listeners()
		if r.URL.Query().Get("format") == "json" {
			w.Header().Set("content-type", "application/json")
			json.NewEncoder(w).Encode(ls)
			return
		}
		for _, l := range ls {
			fmt.Fprintf(w, "%s::%s\n", l.Name, l.Bound)
		}
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		for _, s := range collect(src, nil) {
			fmt.Fprintf(w, "%s: %d\n", s.envoyName(), s.value)
		}
	})
	var filters FilterParser
	mux.HandleFunc("/stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		keep, ok := filters.FromRequest(w, r)
		if !ok {
			return
		}
		w.Header().Set("content-type", "text/plain; version=0.0.4")
		WritePrometheus(w, src, keep)
	})
	mux.HandleFunc("/memory", func(w http.ResponseWriter, r *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		w.Header().Set("content-type", "application/json")
		json.NewEncoder(w).Encode(map[string]uint64{"allocated": m.HeapAlloc, "heap_size": m.HeapSys, "heap_inuse": m.HeapInuse,
			"stack_inuse": m.StackInuse, "total_sys": m.Sys, "goroutines": uint64(runtime.NumGoroutine())})
	})
	mux.HandleFunc("/runtime", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		json.NewEncoder(w).Encode(ReadRuntime())
	})
	mux.Handle("/quitquitquit", guard.Mutating(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "OK")
		src.Quit()
	})))
	mux.HandleFunc("/logging", func(w http.ResponseWriter, r *http.Request) {
		if level == nil {
			http.Error(w, "log level is fixed", http.StatusNotImplemented)
			return
		}
		if l := r.URL.Query().Get("level"); l != "" {
			if code, err := guard.CheckMutating(r); err != nil {
				http.Error(w, err.Error(), code)
				return
			}
			var lv slog.Level
			if l == "trace" {
				l = "debug"
			}
			if l == "critical" || l == "off" {
				l = "error"
			}
			if err := lv.UnmarshalText([]byte(l)); err != nil {
				http.Error(w, fmt.Sprintf("level %q: %v", l, err), http.StatusBadRequest)
				return
			}
			level.Set(lv)
		}
		fmt.Fprintf(w, "active loggers:\n  mast-proxy: %s\n", strings.ToLower(level.Level().String()))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "mast-proxy admin: /ready /server_info /config_dump /clusters /listeners /stats /stats/prometheus /memory /runtime /logging /quitquitquit")
	})
	return guard.ReadOnly(mux)
}

// ConfigDump renders the proxy's bootstrap, accepted resources and secrets
// as Envoy's config_dump JSON, in Envoy's order (bootstrap first, secrets
// last). Private keys are "[redacted]".
func ConfigDump(s *xdsparse.Snapshot, boot Bootstrap, secrets []Secret) []byte {
	type section struct {
		dumpType, key, field, typeURL string
	}
	sections := []section{
		{"type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters", "cluster", xdsparse.ClusterType},
		{"type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs", "endpoint_config", xdsparse.EndpointType},
		{"type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners", "listener", xdsparse.ListenerType},
		{"type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs", "route_config", xdsparse.RouteType},
	}
	var b bytes.Buffer
	b.WriteString(`{"configs":[`)
	b.Write(bootstrapSection(boot))
	for _, sec := range sections {
		b.WriteByte(',')
		fmt.Fprintf(&b, `{"@type":%q,"version_info":%q,%q:[`, sec.dumpType, s.Versions[sec.typeURL], sec.key)
		raw := s.Raw[sec.typeURL]
		names := make([]string, 0, len(raw))
		for n := range raw {
			names = append(names, n)
		}
		sort.Strings(names)
		for j, n := range names {
			if j > 0 {
				b.WriteByte(',')
			}
			res := resourceJSON(&anypb.Any{TypeUrl: sec.typeURL, Value: raw[n]})
			if sec.typeURL == xdsparse.ListenerType {
				fmt.Fprintf(&b, `{"name":%q,"active_state":{"listener":%s}}`, n, res)
			} else {
				fmt.Fprintf(&b, `{%q:%s}`, sec.field, res)
			}
		}
		b.WriteString("]}")
	}
	b.WriteByte(',')
	b.Write(secretsSection(secrets))
	b.WriteString("]}")
	var out bytes.Buffer
	if json.Indent(&out, b.Bytes(), "", "  ") != nil {
		return b.Bytes()
	}
	return out.Bytes()
}

// resourceJSON renders a resource as Envoy's config_dump does (protojson's
// shape). Types the proxy decodes from the wire (clusters, endpoints) are
// rendered from the wire decoder's descriptor table, since mast-proxy does
// not link their generated types (docs/decisions.md); the others with
// protojson; types this binary does not link at all (some Istio filters)
// make protojson fail, and then the bytes are shown as base64.
func resourceJSON(a *anypb.Any) []byte {
	if j, ok := xdsparse.ResourceJSON(a.GetTypeUrl(), a.GetValue()); ok {
		return j
	}
	j, err := protojson.Marshal(a)
	if err == nil {
		return j
	}
	j, _ = json.Marshal(map[string]any{"@type": a.GetTypeUrl(), "value_base64": a.GetValue(), "render_error": err.Error()})
	return j
}

func writeClusters(w http.ResponseWriter, cs map[string]*upstream.Cluster) {
	names := make([]string, 0, len(cs))
	for n := range cs {
		names = append(names, n)
	}
	sort.Strings(names)
	now := time.Now()
	for _, n := range names {
		c := cs[n]
		fmt.Fprintf(w, "%s::default_priority::max_connections::%d\n", n, c.Cfg.MaxConnections)
		fmt.Fprintf(w, "%s::default_priority::max_requests::%d\n", n, c.Cfg.MaxRequests)
		for _, e := range c.Endpoints() {
			a := e.Host.Addr
			fmt.Fprintf(w, "%s::%s::rq_active::%d\n", n, a, e.Host.Active.Load())
			fmt.Fprintf(w, "%s::%s::weight::%d\n", n, a, e.Weight)
			// As Envoy: an ejected host is flagged failed_outlier_check.
			flags := "healthy"
			if e.Host.Ejected(now) {
				flags = "/failed_outlier_check"
			}
			fmt.Fprintf(w, "%s::%s::health_flags::%s\n", n, a, flags)
			fmt.Fprintf(w, "%s::%s::zone::%s\n", n, a, e.Locality)
		}
	}
}
