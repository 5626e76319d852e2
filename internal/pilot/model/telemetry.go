package model

import (
	"slices"
	"sort"
	"time"

	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/mast-mesh/mast/internal/config"
)

// TracingPolicy is the tracing a proxy gets from MeshConfig and the
// Telemetry API, merged as istiod merges them: root namespace, then the
// proxy's namespace, then Telemetry resources selecting the workload; each
// level overrides the fields it sets.
type TracingPolicy struct {
	// Providers name MeshConfig extensionProviders (defaultProviders.tracing
	// when no Telemetry names any).
	Providers []string
	// Sampling is randomSamplingPercentage (MeshConfig's
	// defaultConfig.tracing.sampling, Istio's default 1 %).
	Sampling float64
	// Disabled is disableSpanReporting.
	Disabled bool
	// CustomTags are the Telemetry customTags by tag name.
	CustomTags map[string]*telemetry.Tracing_CustomTag
}

// LogProvider is one access log provider in force on one side of a proxy,
// as istiod merges the Telemetry API's accessLogging: its CEL filter
// expression ("" for none), or disabled.
type LogProvider struct {
	Name     string
	Filter   string
	Disabled bool
}

// telemetryFor returns the Telemetry resources that apply to p, least
// specific first: root namespace without selector, p's namespace without
// selector, then those that select p.
func (pc *PushContext) telemetryFor(p *Proxy) []*telemetry.Telemetry {
	if pc.Config == nil {
		return nil
	}
	type scoped struct {
		rank int
		name string
		t    *telemetry.Telemetry
	}
	var all []scoped
	for _, r := range pc.Config.List(config.Telemetry) {
		t, ok := r.Spec.(*telemetry.Telemetry)
		if !ok || !pc.PolicyApplies(p, r.Namespace, t.GetSelector(), t.GetTargetRef(), t.GetTargetRefs()) {
			continue
		}
		rank := 0
		switch {
		case len(t.GetSelector().GetMatchLabels()) > 0 || t.GetTargetRef() != nil || len(t.GetTargetRefs()) > 0:
			rank = 2
		case r.Namespace == p.Namespace && r.Namespace != pc.Mesh.RootNamespace:
			rank = 1
		}
		all = append(all, scoped{rank, r.Namespace + "/" + r.Name, t})
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].rank != all[j].rank {
			return all[i].rank < all[j].rank
		}
		return all[i].name < all[j].name
	})
	out := make([]*telemetry.Telemetry, len(all))
	for i, s := range all {
		out[i] = s.t
	}
	return out
}

// Tracing returns p's tracing on side mode (SERVER for inbound listeners,
// CLIENT for outbound and gateway ones), nil when no provider traces
// there. As istiod merges it, each tracing entry whose match.mode covers
// the side (no match, CLIENT_AND_SERVER, or that side) overrides what it
// sets, least specific Telemetry first; customTags replace, not merge.
func (pc *PushContext) Tracing(p *Proxy, mode telemetry.WorkloadMode) *TracingPolicy {
	return pc.tracingOf(pc.telemetryFor(p), mode)
}

// tracingOf is Tracing over the Telemetry resources that apply, least
// specific first.
func (pc *PushContext) tracingOf(ts []*telemetry.Telemetry, mode telemetry.WorkloadMode) *TracingPolicy {
	tp, ok := pc.tracing(ts, mode)
	if !ok {
		return nil
	}
	return &tp
}

// tracing is tracingOf by value (ok false for nil), which Traced, asked
// per proxy per push, calls without allocating.
func (pc *PushContext) tracing(ts []*telemetry.Telemetry, mode telemetry.WorkloadMode) (TracingPolicy, bool) {
	tp := TracingPolicy{Providers: pc.Mesh.DefaultTracingProviders, Sampling: pc.Mesh.TracingSampling}
	if tp.Sampling == 0 && !pc.Mesh.TracingSamplingSet {
		tp.Sampling = 1
	}
	for _, t := range ts {
		for _, tr := range t.GetTracing() {
			if m := tr.GetMatch().GetMode(); tr.GetMatch() != nil && m != telemetry.WorkloadMode_CLIENT_AND_SERVER && m != mode {
				continue
			}
			if len(tr.GetProviders()) > 0 {
				tp.Providers = nil
				for _, pr := range tr.GetProviders() {
					tp.Providers = append(tp.Providers, pr.GetName())
				}
			}
			if v := tr.GetRandomSamplingPercentage(); v != nil {
				tp.Sampling = v.GetValue()
			}
			if v := tr.GetDisableSpanReporting(); v != nil {
				tp.Disabled = v.GetValue()
			}
			if tr.GetCustomTags() != nil {
				tp.CustomTags = tr.GetCustomTags()
			}
		}
	}
	if len(tp.Providers) == 0 || tp.Disabled {
		return TracingPolicy{}, false
	}
	return tp, true
}

// Traced reports whether p traces on either side (its routes then carry
// span names).
func (pc *PushContext) Traced(p *Proxy) bool {
	ts := pc.telemetryFor(p) // selected and sorted once for both sides
	if _, ok := pc.tracing(ts, telemetry.WorkloadMode_CLIENT); ok {
		return true
	}
	_, ok := pc.tracing(ts, telemetry.WorkloadMode_SERVER)
	return ok
}

// AccessLogging returns the access log providers in force on p's side
// mode (SERVER for inbound listeners, CLIENT for outbound and gateway
// ones), merged as istiod's mergeLogs does: each Telemetry level (root
// namespace, namespace, workload) whose entries matching mode name
// providers replaces the providers in scope; entries then set, in order,
// each in-scope provider they name (or inherit from the entry before) to
// its level's filter or to disabled. Sorted by name. Nil when no
// Telemetry resource configures access logging and MeshConfig names no
// default provider, or when nothing is in force on this side: MeshConfig's
// accessLogFile then decides, as in istiod. A disabled provider is
// returned, so that it keeps that fallback off. One deliberate difference:
// an entry with disabled and no provider (none named, inherited or
// default) turns this side's logging off, returned as a single disabled
// provider without a name; istiod would fall back to MeshConfig's file, so
// that `disabled: true` silently did nothing.
func (pc *PushContext) AccessLogging(p *Proxy, mode telemetry.WorkloadMode) []LogProvider {
	var levels [][]*telemetry.AccessLogging
	for _, t := range pc.telemetryFor(p) {
		if l := t.GetAccessLogging(); len(l) > 0 {
			levels = append(levels, l)
		}
	}
	return mergeAccessLogs(levels, pc.Mesh.DefaultAccessLogProviders, mode)
}

// mergeAccessLogs is AccessLogging over the accessLogging lists of the
// Telemetry levels that apply, least specific first.
func mergeAccessLogs(levels [][]*telemetry.AccessLogging, defaults []string, mode telemetry.WorkloadMode) []LogProvider {
	if len(levels) == 0 && len(defaults) == 0 {
		return nil
	}
	byName := map[string]LogProvider{}
	if len(levels) == 0 {
		for _, n := range defaults {
			byName[n] = LogProvider{Name: n}
		}
	}
	inScope := defaults
	filters := map[string]string{}
	for _, level := range levels {
		var names []string
		for _, e := range level {
			if !logModeMatches(e.GetMatch(), mode) {
				continue
			}
			for _, pr := range e.GetProviders() {
				names = append(names, pr.GetName())
				filters[pr.GetName()] = e.GetFilter().GetExpression()
			}
		}
		if len(names) > 0 {
			inScope = names
		}
	}
	parent := defaults
	off := false
	for _, level := range levels {
		for _, e := range level {
			var names []string
			for _, pr := range e.GetProviders() {
				names = append(names, pr.GetName())
			}
			if len(names) == 0 {
				names = parent
			}
			parent = names
			if !logModeMatches(e.GetMatch(), mode) {
				continue
			}
			if len(names) == 0 && e.GetDisabled().GetValue() {
				off = true
			}
			for _, n := range names {
				if !slices.Contains(inScope, n) {
					continue
				}
				if e.GetDisabled().GetValue() {
					byName[n] = LogProvider{Name: n, Disabled: true}
					continue
				}
				byName[n] = LogProvider{Name: n, Filter: filters[n]}
				off = false
			}
		}
	}
	if off && len(byName) == 0 {
		return []LogProvider{{Disabled: true}}
	}
	if len(byName) == 0 {
		return nil
	}
	out := make([]LogProvider, 0, len(byName))
	for _, lp := range byName {
		out = append(out, lp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// logModeMatches: an entry without match.mode, or CLIENT_AND_SERVER,
// applies to both sides.
func logModeMatches(sel *telemetry.AccessLogging_LogSelector, mode telemetry.WorkloadMode) bool {
	return sel == nil || sel.GetMode() == telemetry.WorkloadMode_CLIENT_AND_SERVER || sel.GetMode() == mode
}

// ExtensionProvider returns the MeshConfig extension provider named name.
func (m *MeshConfig) ExtensionProvider(name string) *ExtensionProvider {
	for _, p := range m.ExtensionProviders {
		if p.GetName() == name {
			return p
		}
	}
	return nil
}

// MetricsOverride is one Telemetry API metrics override as it applies to
// one reporter side; overrides are applied in order, later ones winning,
// as istiod merges them.
type MetricsOverride struct {
	// Metric is the MetricSelector's metric (REQUEST_COUNT, ...), "" for
	// ALL_METRICS.
	Metric string
	// Disabled is the override's disabled, nil when unset.
	Disabled *bool
	// Remove are the tags with operation REMOVE; Upsert the UPSERT ones,
	// tag name to CEL value.
	Remove []string
	Upsert map[string]string
}

// MetricsPolicy is the Telemetry API's metrics for a proxy.
type MetricsPolicy struct {
	// Client and Server are the overrides of each reporter side.
	Client, Server []MetricsOverride
	// Off: the providers named leave out Prometheus, so no standard
	// metric is reported.
	Off bool
	// ReportingInterval is the Telemetry API's reportingInterval (the
	// most specific one set), 0 when none is.
	ReportingInterval time.Duration
}

// Empty reports whether the policy changes nothing.
func (m MetricsPolicy) Empty() bool {
	return !m.Off && len(m.Client) == 0 && len(m.Server) == 0 && m.ReportingInterval == 0
}

// Metrics returns p's Telemetry API metrics, merged in the order of
// telemetryFor (root namespace, namespace, workload).
func (pc *PushContext) Metrics(p *Proxy) MetricsPolicy {
	var mp MetricsPolicy
	for _, t := range pc.telemetryFor(p) {
		for _, m := range t.GetMetrics() {
			if ri := m.GetReportingInterval(); ri != nil && ri.AsDuration() > 0 {
				mp.ReportingInterval = ri.AsDuration()
			}
			if len(m.GetProviders()) > 0 {
				mp.Off = true
				for _, pr := range m.GetProviders() {
					if pc.Mesh.isPrometheus(pr.GetName()) {
						mp.Off = false
					}
				}
			}
			for _, o := range m.GetOverrides() {
				mo := MetricsOverride{}
				switch sel := o.GetMatch().GetMetricMatch().(type) {
				case *telemetry.MetricSelector_CustomMetric:
					continue // validation warns: Mast reports the standard metrics only
				case *telemetry.MetricSelector_Metric:
					if sel.Metric != telemetry.MetricSelector_ALL_METRICS {
						mo.Metric = sel.Metric.String()
					}
				}
				if d := o.GetDisabled(); d != nil {
					v := d.GetValue()
					mo.Disabled = &v
				}
				names := make([]string, 0, len(o.GetTagOverrides()))
				for n := range o.GetTagOverrides() {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					to := o.GetTagOverrides()[n]
					if to.GetOperation() == telemetry.MetricsOverrides_TagOverride_REMOVE {
						mo.Remove = append(mo.Remove, n)
						continue
					}
					if mo.Upsert == nil {
						mo.Upsert = map[string]string{}
					}
					mo.Upsert[n] = to.GetValue()
				}
				switch o.GetMatch().GetMode() {
				case telemetry.WorkloadMode_CLIENT:
					mp.Client = append(mp.Client, mo)
				case telemetry.WorkloadMode_SERVER:
					mp.Server = append(mp.Server, mo)
				default:
					mp.Client = append(mp.Client, mo)
					mp.Server = append(mp.Server, mo)
				}
			}
		}
	}
	return mp
}

// isPrometheus reports whether a provider name means Prometheus: Istio's
// built-in "prometheus" or an extension provider of that kind.
func (m *MeshConfig) isPrometheus(name string) bool {
	if ep := m.ExtensionProvider(name); ep != nil {
		return ep.GetPrometheus() != nil
	}
	return name == "prometheus"
}
