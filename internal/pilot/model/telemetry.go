package model

import (
	"sort"

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
