package config

import (
	networking "istio.io/api/networking/v1alpha3"
)

// DelegateProblems returns checkDelegates' warnings alone (for the
// analyzers).
func DelegateProblems(s *Snapshot) Problems { return checkDelegates(s, nil) }

// checkDelegates warns about VirtualService delegation that has no effect
// (istiod drops it without a word): a VirtualService without hosts (a
// delegate) that no root's http route delegates to; and a root route whose
// delegate does not exist, has hosts (so is no delegate), or is not
// exported to the root's namespace.
func checkDelegates(s *Snapshot, probs Problems) Problems {
	used := map[Key]bool{}
	for _, r := range s.List(VirtualService) {
		vs, ok := r.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		for i, h := range vs.GetHttp() {
			d := h.GetDelegate()
			if d == nil || d.GetName() == "" || len(vs.GetHosts()) == 0 {
				continue // a delegate's own delegate is refused by Validate
			}
			ns := d.GetNamespace()
			if ns == "" {
				ns = r.Namespace
			}
			k := Key{Kind: VirtualService, Namespace: ns, Name: d.GetName()}
			used[k] = true
			field := pathIndex("spec.http", i) + ".delegate"
			target, ok := s.Get(k)
			if !ok {
				probs = append(probs, problemf(Warning, &r, field, "delegate VirtualService %s/%s not found: this route is dropped", ns, d.GetName()))
				continue
			}
			dvs, _ := target.Spec.(*networking.VirtualService)
			switch {
			case len(dvs.GetHosts()) > 0:
				probs = append(probs, problemf(Warning, &r, field, "VirtualService %s/%s has hosts, so it is not a delegate: this route is dropped", ns, d.GetName()))
			case !exportedTo(dvs.GetExportTo(), ns, r.Namespace):
				probs = append(probs, problemf(Warning, &r, field, "delegate VirtualService %s/%s is not exported to namespace %q: this route is dropped", ns, d.GetName(), r.Namespace))
			}
		}
	}
	for _, r := range s.List(VirtualService) {
		vs, ok := r.Spec.(*networking.VirtualService)
		if ok && len(vs.GetHosts()) == 0 && !used[r.Key()] {
			probs = append(probs, problemf(Warning, &r, "spec.hosts", "VirtualService without hosts is a delegate, and no VirtualService delegates to it: it has no effect"))
		}
	}
	return probs
}

// exportedTo reports whether a resource of namespace ns with exportTo is
// visible from namespace to (empty: everywhere; "." its own namespace;
// "*" everywhere; "~" nowhere).
func exportedTo(exportTo []string, ns, to string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		if e == "*" || e == to || e == "." && ns == to {
			return true
		}
	}
	return false
}
