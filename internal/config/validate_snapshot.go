package config

import (
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// ValidateSnapshot checks references between the resources of a snapshot.
// Its findings are warnings, since the missing piece may come from elsewhere
// (another config source, a service registry):
//   - a VirtualService naming a Gateway that does not exist;
//   - a DestinationRule subset whose labels select no endpoint of its host,
//     when ServiceEntries define that host (their inline endpoints, or the
//     WorkloadEntries their workloadSelector matches);
//   - a VirtualService routing to a subset that no DestinationRule for the
//     host defines;
//   - delegation without effect (checkDelegates).
func ValidateSnapshot(s *Snapshot) Problems {
	if s == nil {
		return nil
	}
	var probs Problems
	for _, r := range s.List(VirtualService) {
		vs, ok := r.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		probs = checkGatewayRefs(s, &r, vs, probs)
		probs = checkSubsetRefs(s, &r, vs, probs)
	}
	for _, r := range s.List(DestinationRule) {
		if dr, ok := r.Spec.(*networking.DestinationRule); ok {
			probs = checkSubsetEndpoints(s, &r, dr, probs)
		}
	}
	return checkDelegates(s, probs)
}

// gatewayKey resolves a gateway reference made from namespace ns.
func gatewayKey(ref, ns string) Key {
	if gns, name, ok := strings.Cut(ref, "/"); ok {
		if gns == "." {
			gns = ns
		}
		return Key{Kind: Gateway, Namespace: gns, Name: name}
	}
	if name, gns, ok := strings.Cut(ref, "."); ok { // legacy name.namespace[.svc.cluster.local]
		gns, _, _ = strings.Cut(gns, ".")
		return Key{Kind: Gateway, Namespace: gns, Name: name}
	}
	return Key{Kind: Gateway, Namespace: ns, Name: ref}
}

func checkGatewayRefs(s *Snapshot, r *Resource, vs *networking.VirtualService, probs Problems) Problems {
	check := func(field string, refs []string) {
		for i, g := range refs {
			if g == meshGateway {
				continue
			}
			k := gatewayKey(g, r.Namespace)
			if _, ok := s.Get(k); !ok {
				probs = append(probs, problemf(Warning, r, pathIndex(field, i), "gateway %q (%s/%s) not found", g, k.Namespace, k.Name))
			}
		}
	}
	check("spec.gateways", vs.Gateways)
	for i, h := range vs.Http {
		for j, m := range h.GetMatch() {
			check(pathIndex(pathIndex("spec.http", i)+".match", j)+".gateways", m.GetGateways())
		}
	}
	for i, t := range vs.Tls {
		for j, m := range t.GetMatch() {
			check(pathIndex(pathIndex("spec.tls", i)+".match", j)+".gateways", m.GetGateways())
		}
	}
	for i, t := range vs.Tcp {
		for j, m := range t.GetMatch() {
			check(pathIndex(pathIndex("spec.tcp", i)+".match", j)+".gateways", m.GetGateways())
		}
	}
	return probs
}

// fqdn resolves a short host name ("reviews") in namespace ns to
// "reviews.ns.svc.cluster.local"; names with dots are kept as they are.
func fqdn(host, ns string) string {
	if strings.Contains(host, ".") || strings.HasPrefix(host, "*") {
		return host
	}
	return host + "." + ns + ".svc.cluster.local"
}

// destinationRulesFor returns the DestinationRules whose host is host as
// seen from namespace ns.
func destinationRulesFor(s *Snapshot, host, ns string) []Resource {
	want := fqdn(host, ns)
	var out []Resource
	for _, r := range s.List(DestinationRule) {
		if dr, ok := r.Spec.(*networking.DestinationRule); ok && fqdn(dr.Host, r.Namespace) == want {
			out = append(out, r)
		}
	}
	return out
}

func checkSubsetRefs(s *Snapshot, r *Resource, vs *networking.VirtualService, probs Problems) Problems {
	check := func(field string, d *networking.Destination) {
		if d == nil || d.Subset == "" || strings.HasPrefix(d.Host, "*") {
			return
		}
		drs := destinationRulesFor(s, d.Host, r.Namespace)
		if len(drs) == 0 {
			probs = append(probs, problemf(Warning, r, field+".subset", "subset %q of host %s: no DestinationRule for this host defines subsets", d.Subset, d.Host))
			return
		}
		for _, dr := range drs {
			for _, ss := range dr.Spec.(*networking.DestinationRule).Subsets {
				if ss.GetName() == d.Subset {
					return
				}
			}
		}
		probs = append(probs, problemf(Warning, r, field+".subset", "subset %q of host %s is not defined in DestinationRule %s", d.Subset, d.Host, drs[0].Key()))
	}
	for i, h := range vs.Http {
		p := pathIndex("spec.http", i)
		for j, rd := range h.GetRoute() {
			check(pathIndex(p+".route", j)+".destination", rd.GetDestination())
		}
		if h.GetMirror() != nil {
			check(p+".mirror", h.GetMirror())
		}
	}
	for i, t := range vs.Tls {
		for j, rd := range t.GetRoute() {
			check(pathIndex(pathIndex("spec.tls", i)+".route", j)+".destination", rd.GetDestination())
		}
	}
	for i, t := range vs.Tcp {
		for j, rd := range t.GetRoute() {
			check(pathIndex(pathIndex("spec.tcp", i)+".route", j)+".destination", rd.GetDestination())
		}
	}
	return probs
}

// endpointLabels returns the label sets of the endpoints that ServiceEntries
// give host (seen from namespace ns), and whether any ServiceEntry defines it.
func endpointLabels(s *Snapshot, host, ns string) ([]map[string]string, []Key) {
	want := fqdn(host, ns)
	var labels []map[string]string
	var owners []Key
	for _, r := range s.List(ServiceEntry) {
		se, ok := r.Spec.(*networking.ServiceEntry)
		if !ok || !slices.ContainsFunc(se.Hosts, func(h string) bool { return fqdn(h, r.Namespace) == want }) {
			continue
		}
		owners = append(owners, r.Key())
		switch {
		case se.WorkloadSelector != nil:
			for _, we := range s.List(WorkloadEntry) {
				if we.Namespace != r.Namespace {
					continue
				}
				wl := workloadEntryLabels(we)
				if labelsMatch(se.WorkloadSelector.GetLabels(), wl) {
					labels = append(labels, wl)
				}
			}
		case len(se.Endpoints) > 0:
			for _, ep := range se.Endpoints {
				labels = append(labels, ep.GetLabels())
			}
		case se.Resolution == networking.ServiceEntry_DNS || se.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN:
			labels = append(labels, nil) // one endpoint per host, without labels
		}
	}
	return labels, owners
}

// workloadEntryLabels merges a WorkloadEntry's metadata labels with its spec labels.
func workloadEntryLabels(r Resource) map[string]string {
	we, _ := r.Spec.(*networking.WorkloadEntry)
	if len(r.Labels) == 0 {
		return we.GetLabels()
	}
	out := make(map[string]string, len(r.Labels)+len(we.GetLabels()))
	for k, v := range r.Labels {
		out[k] = v
	}
	for k, v := range we.GetLabels() {
		out[k] = v
	}
	return out
}

// labelsMatch reports whether every selector label is present in labels.
func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func checkSubsetEndpoints(s *Snapshot, r *Resource, dr *networking.DestinationRule, probs Problems) Problems {
	if strings.HasPrefix(dr.Host, "*") || len(dr.Subsets) == 0 {
		return probs
	}
	eps, owners := endpointLabels(s, dr.Host, r.Namespace)
	if len(owners) == 0 {
		return probs // the host comes from elsewhere (for example Kubernetes); nothing to compare with
	}
	for i, ss := range dr.Subsets {
		if ss == nil || len(ss.Labels) == 0 {
			continue
		}
		if !slices.ContainsFunc(eps, func(l map[string]string) bool { return labelsMatch(ss.Labels, l) }) {
			probs = append(probs, problemf(Warning, r, pathIndex("spec.subsets", i)+".labels",
				"subset %q selects no endpoint of host %s (endpoints from ServiceEntry %s)", ss.Name, dr.Host, keysString(owners)))
		}
	}
	return probs
}

func keysString(ks []Key) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = k.String()
	}
	return strings.Join(s, ", ")
}
