package admin

import (
	"cmp"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

type kind uint8

const (
	counter kind = iota
	gauge
)

// maxLabels is the most labels a stat carries (a route's response code
// class: virtual host, route, class).
const maxLabels = 3

// stat is one metric sample with Prometheus labels. The labels are held
// in place, so that a scrape does not allocate a slice per sample.
type stat struct {
	name  string // Prometheus name without the envoy_ prefix
	lbl   [maxLabels][2]string
	nlbl  uint8
	value int64
	kind  kind
}

// labels are the stat's labels, in order.
func (s *stat) labels() [][2]string { return s.lbl[:s.nlbl] }

// envoyName renders the flat Envoy stat name, e.g.
// cluster.outbound|9080||reviews.upstream_rq_2xx.
func (s stat) envoyName() string {
	prefix, rest := "", s.name
	switch {
	case strings.HasPrefix(rest, "control_plane_"):
		prefix, rest = "control_plane.", strings.TrimPrefix(rest, "control_plane_")
	case strings.HasPrefix(rest, "http_"):
		prefix, rest = "http.", strings.TrimPrefix(rest, "http_")
	case strings.HasPrefix(rest, "cluster_"):
		rest = strings.TrimPrefix(rest, "cluster_")
	case strings.HasPrefix(rest, "vhost_route_"):
		rest = strings.TrimPrefix(rest, "vhost_route_")
	}
	var vhost, route string
	for _, l := range s.labels() {
		switch l[0] {
		case "envoy_cluster_name":
			prefix = "cluster." + l[1] + "."
		case "envoy_virtual_host":
			vhost = l[1]
		case "envoy_route":
			route = l[1]
		case "envoy_http_conn_manager_prefix":
			prefix = "http." + l[1] + "."
		case "envoy_response_code_class":
			rest = strings.TrimSuffix(rest, "xx") + l[1] + "xx"
		}
	}
	if route != "" {
		prefix = "vhost." + vhost + ".route." + route + "."
	}
	return prefix + rest
}

// codeClasses are the response code classes' label values, by class.
var codeClasses = [...]string{"0", "1", "2", "3", "4", "5"}

// collect gathers the proxy's stats that keep keeps (nil: all).
func collect(src Source, keep *FamilyFilter) []stat {
	h := src.HTTPStats()
	cs := src.Clusters()
	routes := h.Routes.All()
	// About 25 connection manager and control plane stats, 8 a route, 18
	// a cluster: one allocation for the usual scrape (filtered, the few
	// kept grow their own).
	var out []stat
	if keep == nil {
		out = make([]stat, 0, 32+8*len(routes)+18*len(cs))
	}
	add := func(name string, v int64, k kind, labels ...[2]string) {
		if !keep.Keep("envoy_", name) {
			return
		}
		st := stat{name: name, value: v, kind: k}
		st.nlbl = uint8(copy(st.lbl[:], labels))
		out = append(out, st)
	}
	add("http_downstream_cx_total", int64(h.CxTotal.Load()), counter)
	add("http_downstream_cx_http1_total", int64(h.CxHTTP1.Load()), counter)
	add("http_downstream_cx_http2_total", int64(h.CxHTTP2.Load()), counter)
	add("http_downstream_cx_active", h.CxActive.Load(), gauge)
	add("http_downstream_rq_active", h.RqActive.Load(), gauge)
	add("http_downstream_rq_total", int64(h.RqTotal.Load()), counter)
	for i, v := range []uint64{h.Rq1xx.Load(), h.Rq2xx.Load(), h.Rq3xx.Load(), h.Rq4xx.Load(), h.Rq5xx.Load()} {
		add("http_downstream_rq_xx", int64(v), counter, [2]string{"envoy_response_code_class", codeClasses[i+1]})
	}
	add("http_downstream_rq_timeout", int64(h.RqTimeout.Load()), counter)
	add("http_downstream_rq_retry", int64(h.RqRetry.Load()), counter)
	add("http_no_route", int64(h.RqNoRoute.Load()), counter)
	add("http_on_demand_vhds", int64(h.OnDemand.Load()), counter)
	add("http_on_demand_vhds_failed", int64(h.OnDemandFailed.Load()), counter)
	add("http_downstream_rq_rejected", int64(h.RqRejected.Load()), counter)
	add("http_downstream_cx_upgrades_total", int64(h.Upgrades.Load()), counter)
	add("http_rq_mirrored", int64(h.Mirrored.Load()), counter)
	add("http_rq_mirror_skipped", int64(h.MirrorSkipped.Load()), counter)
	add("http_fault_aborts_injected", int64(h.FaultAbort.Load()), counter)
	add("http_fault_delays_injected", int64(h.FaultDelay.Load()), counter)
	// Per-route counters of routes with a stat_prefix, named as Envoy's
	// vhost.<virtual host>.route.<stat_prefix>.upstream_rq_*.
	for _, r := range routes {
		vh, rt := [2]string{"envoy_virtual_host", r.VHost}, [2]string{"envoy_route", r.Prefix}
		add("vhost_route_upstream_rq_total", int64(r.Stats.RqTotal.Load()), counter, vh, rt)
		for i, v := range []uint64{r.Stats.Rq2xx.Load(), r.Stats.Rq3xx.Load(), r.Stats.Rq4xx.Load(), r.Stats.Rq5xx.Load()} {
			add("vhost_route_upstream_rq_xx", int64(v), counter, vh, rt, [2]string{"envoy_response_code_class", codeClasses[i+2]})
		}
		add("vhost_route_upstream_rq_timeout", int64(r.Stats.RqTimeout.Load()), counter, vh, rt)
		add("vhost_route_upstream_rq_retry", int64(r.Stats.RqRetry.Load()), counter, vh, rt)
	}
	connected, acks, nacks := src.XDSState()
	c := int64(0)
	if connected {
		c = 1
	}
	add("control_plane_connected_state", c, gauge)
	add("control_plane_ack_total", acks, counter)
	add("control_plane_nack_total", nacks, counter)
	filterStats(src.Snapshot(), add)
	now := time.Now()
	names := make([]string, 0, len(cs))
	for n := range cs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st := cs[n].Stats
		l := [2]string{"envoy_cluster_name", n}
		add("cluster_upstream_rq_total", int64(st.RqTotal.Load()), counter, l)
		for i, v := range []uint64{st.Rq2xx.Load(), st.Rq3xx.Load(), st.Rq4xx.Load(), st.Rq5xx.Load()} {
			add("cluster_upstream_rq_xx", int64(v), counter, l, [2]string{"envoy_response_code_class", codeClasses[i+2]})
		}
		add("cluster_upstream_rq_active", st.RqActive.Load(), gauge, l)
		add("cluster_upstream_rq_timeout", int64(st.RqTimeout.Load()), counter, l)
		add("cluster_upstream_rq_retry", int64(st.RqRetry.Load()), counter, l)
		add("cluster_upstream_rq_pending_overflow", int64(st.RqPendingOverflow.Load()), counter, l)
		add("cluster_upstream_rq_retry_overflow", int64(st.RqRetryOverflow.Load()), counter, l)
		add("cluster_upstream_rq_per_try_timeout", int64(st.RqPerTryTimeout.Load()), counter, l)
		add("cluster_upstream_rq_hedged", int64(st.RqHedged.Load()), counter, l)
		add("cluster_upstream_rq_hedge_cancelled", int64(st.RqHedgeCancelled.Load()), counter, l)
		add("cluster_upstream_cx_total", int64(st.CxTotal.Load()), counter, l)
		add("cluster_upstream_cx_active", st.CxActive.Load(), gauge, l)
		add("cluster_upstream_cx_connect_fail", int64(st.CxConnectFail.Load()), counter, l)
		add("cluster_membership_total", int64(len(cs[n].Hosts())), gauge, l)
		if cs[n].Cfg.Outlier != nil {
			active := 0
			for _, h := range cs[n].Hosts() {
				if h.Ejected(now) {
					active++
				}
			}
			add("cluster_outlier_detection_ejections_enforced_total", int64(cs[n].OutlierEjections()), counter, l)
			add("cluster_outlier_detection_ejections_active", int64(active), gauge, l)
			if cs[n].Cfg.Outlier.Latency != nil {
				add("cluster_outlier_detection_ejections_enforced_latency", int64(cs[n].LatencyEjections()), counter, l)
			}
		}
	}
	return out
}

func writePrometheus(w io.Writer, stats []stat) {
	// A metric family's samples must be contiguous: the stats are written
	// in order of name, those of one name in collected order. The indexes
	// are sorted, not the stats (about 130 bytes each, which a stable sort
	// moved many times: most of a sidecar's scrape).
	order := make([]int32, len(stats))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := strings.Compare(stats[a].name, stats[b].name); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	b := make([]byte, 0, promChunk+512)
	for i, at := range order {
		s := &stats[at]
		if i == 0 || s.name != stats[order[i-1]].name {
			t := "counter"
			if s.kind == gauge {
				t = "gauge"
			}
			b = append(append(append(append(append(b, "# TYPE envoy_"...), s.name...), ' '), t...), '\n')
		}
		b = append(append(b, "envoy_"...), s.name...)
		if s.nlbl > 0 {
			b = append(b, '{')
			for i, l := range s.labels() {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendQuoted(append(append(b, l[0]...), '='), l[1])
			}
			b = append(b, '}')
		}
		b = append(strconv.AppendInt(append(b, ' '), s.value, 10), '\n')
		if len(b) >= promChunk {
			w.Write(b)
			b = b[:0]
		}
	}
	w.Write(b)
}

// appendQuoted appends s as a label value of Prometheus's text format:
// in double quotes, with backslash, double quote and line feed escaped
// (\\, \", \n) and everything else as it is. Bytes that are not UTF-8
// become U+FFFD, since the format is UTF-8.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	plain := 0 // s[:plain] needs no escaping
	for plain < len(s) && s[plain] < utf8.RuneSelf && s[plain] != '\\' && s[plain] != '"' && s[plain] != '\n' {
		plain++
	}
	b = append(b, s[:plain]...)
	if plain < len(s) {
		for _, r := range s[plain:] { // invalid UTF-8 ranges as U+FFFD
			switch r {
			case '\\':
				b = append(b, '\\', '\\')
			case '"':
				b = append(b, '\\', '"')
			case '\n':
				b = append(b, '\\', 'n')
			default:
				b = utf8.AppendRune(b, r)
			}
		}
	}
	return append(b, '"')
}

// promChunk is how much of a scrape writePrometheus renders before it
// writes it out.
const promChunk = 16 << 10

// WritePrometheus writes the proxy's Envoy-named stats (envoy_*) in
// Prometheus's text format, as /stats/prometheus serves them: those of
// the families keep keeps (nil: all).
func WritePrometheus(w io.Writer, src Source, keep *FamilyFilter) {
	writePrometheus(w, collect(src, keep))
}

// filterStats adds the statistics of the HTTP filters that keep their own
// (filter.StatsFilter), labelled with their connection manager's prefix.
func filterStats(snap *xdsparse.Snapshot, add func(name string, v int64, k kind, labels ...[2]string)) {
	if snap == nil {
		return
	}
	names := make([]string, 0, len(snap.Listeners))
	for n := range snap.Listeners {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := map[filter.HTTPFilter]bool{}
	for _, n := range names {
		l := snap.Listeners[n]
		chains := append([]*xdsparse.FilterChain{l.Default}, l.Chains...)
		for _, fc := range chains {
			if fc == nil || fc.HTTP == nil {
				continue
			}
			c := fc.HTTP.Filters
			for i := 0; i < c.Len(); i++ {
				f := c.Filter(i)
				sf, ok := f.(filter.StatsFilter)
				if !ok || seen[f] {
					continue
				}
				seen[f] = true
				label := [2]string{"envoy_http_conn_manager_prefix", fc.HTTP.StatPrefix}
				sf.Stats(func(name string, v int64, isGauge bool) {
					k := counter
					if isGauge {
						k = gauge
					}
					add("http_"+name, v, k, label)
				})
			}
		}
	}
}
