package serviceentry

import (
	"cmp"
	"maps"
	"reflect"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// Builder builds the snapshots Build builds, keeping what it built: after a
// change it rebuilds only the services the changed ServiceEntries and
// WorkloadEntries touch — the hosts of a changed entry (before and after),
// and the services whose selectors pick a changed WorkloadEntry (by its old
// or new labels) — and re-indexes only the namespaces whose WorkloadEntries
// changed. The other services and endpoint lists are the previous
// snapshot's own (same pointers). At 10,000 services a change to one
// ServiceEntry costs a few services' work instead of all of them.
//
// Stored resources are immutable (one spec message is one resource), so a
// change is a resource whose spec pointer differs. A Builder is not safe for
// concurrent use.
type Builder struct {
	opts     Options
	ses, wes []config.NamespaceResources // what snap was built from
	ids      *identities
	wls      map[string]*nsWorkloads
	svcs     map[key]*keyed // every service of snap
	snap     *registry.Snapshot
}

// keyed is a built service and its endpoints in snapshot order.
type keyed struct {
	svc *registry.Service
	eps []*registry.Endpoint
}

// Build returns the snapshot of cfg's ServiceEntries and WorkloadEntries, as
// the function Build does.
func (b *Builder) Build(cfg *config.Snapshot, opts Options) *registry.Snapshot {
	ses, wes := cfg.ByNamespace(config.ServiceEntry), cfg.ByNamespace(config.WorkloadEntry)
	if b.snap == nil || !sameOptions(b.opts, opts) {
		b.ses, b.wes = ses, wes
		return b.full(cfg.List(config.ServiceEntry), cfg.List(config.WorkloadEntry), opts)
	}
	affected := map[key]bool{}
	changedNS := map[string]bool{} // namespaces whose WorkloadEntries changed
	type labeled struct {
		ns     string
		labels map[string]string
	}
	var touched []labeled // changed WorkloadEntries' labels, old and new
	diffNamespaces(b.wes, wes, func(r *config.Resource) {
		changedNS[r.Namespace] = true
		if we, ok := r.Spec.(*networking.WorkloadEntry); ok && we != nil {
			touched = append(touched, labeled{r.Namespace, mergeLabels(we.GetLabels(), r.Labels)})
		}
	})
	diffNamespaces(b.ses, ses, func(r *config.Resource) {
		if se, ok := r.Spec.(*networking.ServiceEntry); ok && se != nil {
			for _, h := range se.GetHosts() {
				affected[key{h, r.Namespace}] = true
			}
		}
	})
	b.ses, b.wes = ses, wes
	if len(affected) == 0 && len(changedNS) == 0 {
		return b.snap
	}
	for ns := range changedNS {
		n := workloadsOf(config.InNamespace(wes, ns), b.opts, b.ids, ns)[ns]
		if n == nil {
			delete(b.wls, ns)
		} else {
			b.wls[ns] = n
		}
	}
	for _, w := range touched {
		for _, r := range config.InNamespace(ses, w.ns) {
			se, ok := r.Spec.(*networking.ServiceEntry)
			if !ok || se == nil || se.GetWorkloadSelector() == nil || !matches(w.labels, se.GetWorkloadSelector().GetLabels()) {
				continue
			}
			for _, h := range se.GetHosts() {
				affected[key{h, w.ns}] = true
			}
		}
	}
	if len(affected) == 0 {
		return b.snap // WorkloadEntries no service selects
	}
	// Rebuild the affected services, one namespace at a time.
	byKey := map[key]*built{}
	namespaces := map[string]bool{}
	for k := range affected {
		namespaces[k.ns] = true
	}
	var rebuilt []*built
	for ns := range namespaces {
		rebuilt = buildEntries(config.InNamespace(ses, ns), b.wls, b.ids, affected, byKey, rebuilt)
	}
	for k := range affected {
		if bt, ok := byKey[k]; ok {
			nk := &keyed{svc: bt.svc, eps: bt.sortedEndpoints()}
			// What was rebuilt equal keeps the previous pointer, so that
			// caches keyed on identity keep their entries and
			// registry.Reuse has nothing left to do.
			if old := b.svcs[k]; old != nil {
				if registry.ServiceEqual(old.svc, nk.svc) {
					nk.svc, bt.svc = old.svc, old.svc
				}
				if registry.EndpointsEqual(old.eps, nk.eps) {
					nk.eps = old.eps
				}
			}
			b.svcs[k] = nk
		} else {
			delete(b.svcs, k)
		}
	}
	// The services: the previous ones but the affected, merged with the rebuilt.
	slices.SortFunc(rebuilt, func(x, y *built) int { return compareServices(x.svc, y.svc) })
	old := b.snap.Services
	out := &registry.Snapshot{Services: make([]*registry.Service, 0, len(old)+len(rebuilt))}
	i := 0
	for _, s := range old {
		if affected[key{s.Hostname, s.Namespace}] {
			continue
		}
		for ; i < len(rebuilt) && compareServices(rebuilt[i].svc, s) < 0; i++ {
			out.Services = append(out.Services, rebuilt[i].svc)
		}
		out.Services = append(out.Services, s)
	}
	for ; i < len(rebuilt); i++ {
		out.Services = append(out.Services, rebuilt[i].svc)
	}
	// Endpoints: a host's list is its first namespace's service's.
	out.Endpoints = maps.Clone(b.snap.Endpoints)
	hosts := map[string]struct{}{}
	for k := range affected {
		hosts[k.host] = struct{}{}
	}
	for h := range hosts {
		delete(out.Endpoints, h)
		j, found := slices.BinarySearchFunc(out.Services, h, func(s *registry.Service, h string) int { return strings.Compare(s.Hostname, h) })
		if !found {
			continue
		}
		first := out.Services[j]
		if eps := b.svcs[key{h, first.Namespace}].eps; len(eps) > 0 {
			out.Endpoints[h] = eps
		}
	}
	out.Delta = registry.NewDelta(b.snap, hosts)
	b.snap = out
	return out
}

// full builds everything from scratch.
func (b *Builder) full(ses, wes []config.Resource, opts Options) *registry.Snapshot {
	b.opts = opts
	b.ids = &identities{td: cmp.Or(opts.TrustDomain, "cluster.local")}
	b.wls = workloadsOf(wes, opts, b.ids, "")
	byKey := make(map[key]*built, len(ses))
	services := buildEntries(ses, b.wls, b.ids, nil, byKey, make([]*built, 0, len(ses)))
	slices.SortFunc(services, func(x, y *built) int { return compareServices(x.svc, y.svc) })
	out := &registry.Snapshot{
		Services:  make([]*registry.Service, len(services)),
		Endpoints: make(map[string][]*registry.Endpoint, len(services)),
	}
	b.svcs = make(map[key]*keyed, len(services))
	for i, bt := range services {
		k := &keyed{svc: bt.svc, eps: bt.sortedEndpoints()}
		b.svcs[key{bt.svc.Hostname, bt.svc.Namespace}] = k
		out.Services[i] = bt.svc
		if i > 0 && services[i-1].svc.Hostname == bt.svc.Hostname {
			continue // endpoints of the first namespace only
		}
		if len(k.eps) > 0 {
			out.Endpoints[bt.svc.Hostname] = k.eps
		}
	}
	b.snap = out
	return out
}

func sameOptions(a, b Options) bool {
	return a.TrustDomain == b.TrustDomain && a.DomainSuffix == b.DomainSuffix &&
		(len(a.Workloads) == 0 && len(b.Workloads) == 0 || reflect.DeepEqual(a.Workloads, b.Workloads))
}

// diffResources calls f for every resource of old and of new (both sorted by
// namespace and name) that the other lacks or holds in another version.
func diffResources(old, new []config.Resource, f func(*config.Resource)) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		c := 0
		switch {
		case i == len(old):
			c = 1
		case j == len(new):
			c = -1
		case old[i].Spec == new[j].Spec && old[i].Spec != nil && old[i].Namespace == new[j].Namespace && old[i].Name == new[j].Name:
			// The same resource (a spec is one resource's): most of a
			// large list, told apart without comparing names' bytes.
			i++
			j++
			continue
		default:
			c = compareNamespaceName(&old[i], &new[j])
		}
		switch {
		case c < 0:
			f(&old[i])
			i++
		case c > 0:
			f(&new[j])
			j++
		default:
			if old[i].Spec != new[j].Spec {
				f(&old[i])
				f(&new[j])
			}
			i++
			j++
		}
	}
}

func compareNamespaceName(a, b *config.Resource) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// diffNamespaces calls f as diffResources does for two snapshots' lists of
// one kind by namespace, skipping the namespaces Update did not touch.
func diffNamespaces(old, new []config.NamespaceResources, f func(*config.Resource)) {
	config.ChangedNamespaces(old, new, func(o, n []config.Resource) { diffResources(o, n, f) })
}
