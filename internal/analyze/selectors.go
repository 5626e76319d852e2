package analyze

import (
	"sort"

	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/mast-mesh/mast/internal/config"
)

func names(rs []config.Resource) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Name)
	}
	sort.Strings(out)
	return out
}

func (c *context) namespace(name string) *Object {
	for _, n := range c.in.Namespaces {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func podInAmbient(p *Pod) bool { return p.Annotations["ambient.istio.io/redirection"] == "enabled" }

func namespaceInAmbient(n *Object) bool {
	if n == nil || n.Labels["istio-injection"] == "enabled" || n.Labels["istio.io/rev"] != "" {
		return false
	}
	return n.Labels["istio.io/dataplane-mode"] == "ambient"
}

// analyzeSidecarSelectors: a Sidecar's selector must match a pod in its
// namespace (IST0101); one pod must not be selected by two Sidecars
// (IST0110); a namespace must not have two Sidecars without selector
// (IST0111); Sidecars have no effect on ambient workloads (IST0167).
func analyzeSidecarSelectors(c *context) {
	podSidecars := map[*Pod][]config.Resource{}
	var pods []*Pod
	nsSidecars := map[string][]config.Resource{}
	var nss []string
	for _, r := range c.in.Config.List(config.Sidecar) {
		sc := r.Spec.(*networking.Sidecar)
		if len(sc.GetWorkloadSelector().GetLabels()) == 0 {
			if len(nsSidecars[r.Namespace]) == 0 {
				nss = append(nss, r.Namespace)
			}
			nsSidecars[r.Namespace] = append(nsSidecars[r.Namespace], r)
			continue
		}
		sel := selector(sc.GetWorkloadSelector().GetLabels())
		found := false
		for _, p := range c.in.Pods {
			if p.Namespace != r.Namespace || !sel.matches(p.Labels) {
				continue
			}
			found = true
			if len(podSidecars[p]) == 0 {
				pods = append(pods, p)
			}
			podSidecars[p] = append(podSidecars[p], r)
		}
		if !found {
			c.report(newMessage(ReferencedResourceNotFound, refOf(r), "selector", sel.String()))
		}
	}
	reported := map[config.Key]bool{}
	for _, p := range pods {
		list := podSidecars[p]
		ambient := podInAmbient(p)
		if len(list) == 1 && !ambient {
			continue
		}
		for _, r := range list {
			if ambient {
				if !reported[r.Key()] {
					reported[r.Key()] = true
					c.report(newMessage(IneffectivePolicy, refOf(r), "selected workload is in ambient mode, the policy has no impact"))
				}
				continue
			}
			c.report(newMessage(ConflictingSidecarWorkloadSelectors, refOf(r), names(list), p.Namespace, p.Name))
		}
	}
	for _, ns := range nss {
		list := nsSidecars[ns]
		if namespaceInAmbient(c.namespace(ns)) {
			for _, r := range list {
				if !reported[r.Key()] {
					reported[r.Key()] = true
					c.report(newMessage(IneffectivePolicy, refOf(r), "namespace is in ambient mode, the policy has no impact"))
				}
			}
			continue
		}
		if len(list) > 1 {
			for _, r := range list {
				c.report(newMessage(MultipleSidecarsWithoutWorkloadSelectors, refOf(r), names(list), ns))
			}
		}
	}
}

// analyzeTelemetrySelectors: a Telemetry's selector must match a pod in its
// namespace (IST0101), and one pod must not be selected by two (IST0159).
func analyzeTelemetrySelectors(c *context) {
	podTelemetries := map[*Pod][]config.Resource{}
	var pods []*Pod
	for _, r := range c.in.Config.List(config.Telemetry) {
		t := r.Spec.(*telemetry.Telemetry)
		if t.GetSelector() == nil || len(t.GetSelector().GetMatchLabels()) == 0 {
			continue
		}
		sel := selector(t.GetSelector().GetMatchLabels())
		found := false
		for _, p := range c.in.Pods {
			if p.Namespace != r.Namespace || !sel.matches(p.Labels) {
				continue
			}
			found = true
			if len(podTelemetries[p]) == 0 {
				pods = append(pods, p)
			}
			podTelemetries[p] = append(podTelemetries[p], r)
		}
		if !found {
			c.report(newMessage(ReferencedResourceNotFound, refOf(r), "selector", sel.String()))
		}
	}
	for _, p := range pods {
		list := podTelemetries[p]
		if len(list) < 2 {
			continue
		}
		for _, r := range list {
			c.report(newMessage(ConflictingTelemetryWorkloadSelectors, refOf(r), names(list), p.Namespace, p.Name))
		}
	}
}

// analyzeTelemetryDefaultSelectors: a namespace must not have two
// Telemetries without selector (IST0160).
func analyzeTelemetryDefaultSelectors(c *context) {
	byNS := map[string][]config.Resource{}
	var nss []string
	for _, r := range c.in.Config.List(config.Telemetry) {
		if r.Spec.(*telemetry.Telemetry).GetSelector() != nil {
			continue
		}
		if len(byNS[r.Namespace]) == 0 {
			nss = append(nss, r.Namespace)
		}
		byNS[r.Namespace] = append(byNS[r.Namespace], r)
	}
	for _, ns := range nss {
		if list := byNS[ns]; len(list) > 1 {
			for _, r := range list {
				c.report(newMessage(MultipleTelemetriesWithoutWorkloadSelectors, refOf(r), names(list), ns))
			}
		}
	}
}

// analyzeTelemetryProviders: with no default access-log provider in the mesh
// config, an access-logging entry without providers does nothing (IST0157).
func analyzeTelemetryProviders(c *context) {
	if len(c.in.Mesh.GetDefaultProviders().GetAccessLogging()) > 0 {
		return
	}
	for _, r := range c.in.Config.List(config.Telemetry) {
		for _, l := range r.Spec.(*telemetry.Telemetry).GetAccessLogging() {
			if l.GetDisabled().GetValue() {
				continue
			}
			if len(l.GetProviders()) == 0 {
				c.report(newMessage(InvalidTelemetryProvider, refOf(r), r.Name, r.Namespace))
			}
		}
	}
}
