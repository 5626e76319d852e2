package model

import (
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
	// Mode is the workload mode the policy applies to (client, server or
	// both).
	Mode telemetry.WorkloadMode
}

// AccessLogPolicy is the Telemetry API's access logging for a proxy,
// merged in the same order as TracingPolicy.
type AccessLogPolicy struct {
	// Set reports that some Telemetry resource configures access logging
	// for the proxy (otherwise MeshConfig's accessLogFile alone decides).
	Set bool
	// Providers name extensionProviders ("envoy" is Istio's built-in file
	// provider: MeshConfig's accessLogFile, /dev/stdout when unset).
	Providers []string
	Disabled  bool
	// Filter is the CEL filter.expression, "" for none.
	Filter string
	// Mode is the workload mode.
	Mode telemetry.WorkloadMode
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

// Tracing returns p's tracing, nil when no provider traces it.
func (pc *PushContext) Tracing(p *Proxy) *TracingPolicy {
	tp := &TracingPolicy{Providers: pc.Mesh.DefaultTracingProviders, Sampling: pc.Mesh.TracingSampling}
	if tp.Sampling == 0 && !pc.Mesh.TracingSamplingSet {
		tp.Sampling = 1
	}
	for _, t := range pc.telemetryFor(p) {
		for _, tr := range t.GetTracing() {
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
			if len(tr.GetCustomTags()) > 0 {
				if tp.CustomTags == nil {
					tp.CustomTags = map[string]*telemetry.Tracing_CustomTag{}
				}
				for k, v := range tr.GetCustomTags() {
					tp.CustomTags[k] = v
				}
			}
			tp.Mode = tr.GetMatch().GetMode()
		}
	}
	if len(tp.Providers) == 0 || tp.Disabled {
		return nil
	}
	return tp
}

// AccessLogging returns p's Telemetry API access logging.
func (pc *PushContext) AccessLogging(p *Proxy) AccessLogPolicy {
	var al AccessLogPolicy
	for _, t := range pc.telemetryFor(p) {
		for _, a := range t.GetAccessLogging() {
			al.Set = true
			if len(a.GetProviders()) > 0 {
				al.Providers = nil
				for _, pr := range a.GetProviders() {
					al.Providers = append(al.Providers, pr.GetName())
				}
			}
			if v := a.GetDisabled(); v != nil {
				al.Disabled = v.GetValue()
			}
			if f := a.GetFilter(); f != nil {
				al.Filter = f.GetExpression()
			}
			al.Mode = a.GetMatch().GetMode()
		}
	}
	return al
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
