// Package envoyfilter applies Istio's EnvoyFilter resources to the xDS
// mastd generates. It wraps a generator (model.GenerateFunc): the wrapped
// generator's output, cached and shared between proxies, is never changed;
// a proxy that an EnvoyFilter selects gets patched clones. Selection and
// order follow istiod: EnvoyFilters of the root namespace apply mesh-wide,
// those of the proxy's namespace to it, each narrowed by workloadSelector
// or targetRefs and match.proxy; ordered by priority, then root namespace
// before the proxy's, then name. Patches that match nothing in a proxy's
// resources are logged as warnings, once per proxy and EnvoyFilter version.
package envoyfilter

import (
	"log/slog"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/envoypatch"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// The xDS type URLs patched.
const (
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	routeType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
)

var (
	listenerKinds = []networking.EnvoyFilter_ApplyTo{networking.EnvoyFilter_LISTENER, networking.EnvoyFilter_LISTENER_FILTER,
		networking.EnvoyFilter_FILTER_CHAIN, networking.EnvoyFilter_NETWORK_FILTER, networking.EnvoyFilter_HTTP_FILTER}
	routeKinds = []networking.EnvoyFilter_ApplyTo{networking.EnvoyFilter_ROUTE_CONFIGURATION,
		networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE}
	clusterKinds = []networking.EnvoyFilter_ApplyTo{networking.EnvoyFilter_CLUSTER}
)

// Config configures an Applier.
type Config struct {
	Logger *slog.Logger
}

// Applier applies EnvoyFilters to generated resources. It remembers what
// it warned about, so that a patch matching nothing is logged once per
// proxy and EnvoyFilter version rather than on every push.
type Applier struct {
	log *slog.Logger

	mu     sync.Mutex
	warned map[warnKey]proto.Message // -> the EnvoyFilter spec warned about
	inline map[string]inlineHits     // proxy ID -> route patches applied inline by its last listener generation
}

type warnKey struct {
	proxy, filter string
	index         int
}

type inlineHits struct {
	version string
	hit     map[patchID]bool
}

type patchID struct {
	filter string
	index  int
}

// maxRemembered bounds the warning and inline-hit memories; past it they start afresh.
const maxRemembered = 1 << 14

// New returns an Applier.
func New(cfg Config) *Applier {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Applier{log: log, warned: map[warnKey]proto.Message{}, inline: map[string]inlineHits{}}
}

// Wrap returns gen with the EnvoyFilters that select each proxy applied
// to its listeners, route configurations and clusters.
func (a *Applier) Wrap(gen model.GenerateFunc) model.GenerateFunc {
	return func(pc *model.PushContext, p *model.Proxy, typeURL string, names []string) ([]model.XDSResource, error) {
		out, err := gen(pc, p, typeURL, names)
		if err != nil || p.IsGRPC() || (typeURL != listenerType && typeURL != routeType && typeURL != clusterType) {
			return out, err
		}
		set, filters := ForProxy(pc, p)
		var kinds []networking.EnvoyFilter_ApplyTo
		switch typeURL {
		case listenerType:
			kinds = append(append(kinds, listenerKinds...), routeKinds...)
		case routeType:
			kinds = routeKinds
		case clusterType:
			kinds = clusterKinds
		}
		if !set.Has(kinds...) {
			return out, nil
		}
		rec := envoypatch.NewRecord()
		out = Apply(set, p, typeURL, out, rec)
		a.report(pc, p, typeURL, set, filters, rec)
		return out, nil
	}
}

// PatchesRoutes reports whether an EnvoyFilter selecting p patches route
// configurations, virtual hosts or routes. Such patches apply to whole
// route configurations, so a proxy that takes its virtual hosts on demand
// (VHDS) gets them whole instead, where the patches take effect.
func PatchesRoutes(pc *model.PushContext, p *model.Proxy) bool {
	set, _ := ForProxy(pc, p)
	return set.Has(routeKinds...)
}

// ForProxy returns the patches that apply to p, in order, and the
// EnvoyFilters they come from (by "namespace/name").
func ForProxy(pc *model.PushContext, p *model.Proxy) (*envoypatch.Set, map[string]proto.Message) {
	if pc.Config == nil {
		return nil, nil
	}
	type selected struct {
		r    config.Resource
		spec *networking.EnvoyFilter
		root bool
	}
	var sel []selected
	for _, r := range pc.Config.List(config.EnvoyFilter) {
		spec, ok := r.Spec.(*networking.EnvoyFilter)
		if !ok || !applies(pc, p, r.Namespace, spec) {
			continue
		}
		sel = append(sel, selected{r: r, spec: spec, root: r.Namespace == pc.Mesh.RootNamespace})
	}
	if len(sel) == 0 {
		return nil, nil
	}
	sort.SliceStable(sel, func(i, j int) bool {
		if sel[i].spec.GetPriority() != sel[j].spec.GetPriority() {
			return sel[i].spec.GetPriority() < sel[j].spec.GetPriority()
		}
		return sel[i].root && !sel[j].root
	})
	var patches []*envoypatch.Patch
	filters := map[string]proto.Message{}
	for _, s := range sel {
		c := compiled(pc, s.r, s.spec)
		filters[c.name] = s.spec
		for _, pt := range c.patches {
			if pt.ProxyMatches(p.Metadata["ISTIO_VERSION"], p.Metadata) {
				patches = append(patches, pt)
			}
		}
	}
	return envoypatch.NewSet(patches), filters
}

// applies reports whether an EnvoyFilter in namespace ns selects p.
func applies(pc *model.PushContext, p *model.Proxy, ns string, spec *networking.EnvoyFilter) bool {
	if len(spec.GetTargetRefs()) > 0 {
		return pc.PolicyApplies(p, ns, nil, nil, spec.GetTargetRefs())
	}
	if ns != p.Namespace && ns != pc.Mesh.RootNamespace {
		return false
	}
	return model.LabelsMatch(spec.GetWorkloadSelector().GetLabels(), p.Labels)
}

type compiledFilter struct {
	name    string
	patches []*envoypatch.Patch
	probs   []envoypatch.Problem
}

type memoKey struct{ key config.Key }

// compiled returns the EnvoyFilter's patches, compiled once per push.
func compiled(pc *model.PushContext, r config.Resource, spec *networking.EnvoyFilter) *compiledFilter {
	return pc.Memo(memoKey{r.Key()}, func() any {
		name := r.Namespace + "/" + r.Name
		patches, probs := envoypatch.Compile(name, spec)
		return &compiledFilter{name: name, patches: patches, probs: probs}
	}).(*compiledFilter)
}

// report logs the patches that matched nothing or failed, once per proxy
// and EnvoyFilter version.
func (a *Applier) report(pc *model.PushContext, p *model.Proxy, typeURL string, set *envoypatch.Set, filters map[string]proto.Message, rec *envoypatch.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var inline map[patchID]bool
	switch typeURL {
	case listenerType:
		hits := inlineHits{version: pc.Version, hit: map[patchID]bool{}}
		for pt := range rec.Applied {
			hits.hit[patchID{pt.Filter, pt.Index}] = true
		}
		if len(a.inline) >= maxRemembered {
			clear(a.inline)
		}
		a.inline[p.ID] = hits
	case routeType:
		if h, ok := a.inline[p.ID]; ok && h.version == pc.Version {
			inline = h.hit
		}
	}
	var kinds []networking.EnvoyFilter_ApplyTo
	switch typeURL {
	case listenerType:
		kinds = listenerKinds // route patches are judged with the route configurations
	case routeType:
		kinds = routeKinds
	case clusterType:
		kinds = clusterKinds
	}
	for _, pt := range set.Patches(kinds...) {
		failed, isFailed := rec.Failed[pt]
		if rec.Applied[pt] && !isFailed || inline[patchID{pt.Filter, pt.Index}] {
			continue
		}
		k := warnKey{proxy: p.ID, filter: pt.Filter, index: pt.Index}
		if a.warned[k] == filters[pt.Filter] {
			continue
		}
		if len(a.warned) >= maxRemembered {
			clear(a.warned)
		}
		a.warned[k] = filters[pt.Filter]
		if isFailed {
			a.log.Warn("EnvoyFilter patch failed", "envoyfilter", pt.Filter, "patch", pt.Index,
				"applyTo", pt.ApplyTo.String(), "operation", pt.Op.String(), "proxy", p.ID, "err", failed)
			continue
		}
		a.log.Warn("EnvoyFilter patch matched nothing", "envoyfilter", pt.Filter, "patch", pt.Index,
			"applyTo", pt.ApplyTo.String(), "operation", pt.Op.String(), "proxy", p.ID)
	}
}
