package analyze

import (
	"strings"

	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
)

// analyzeAuthorizationPolicies: a policy's selector must match a workload in
// the mesh (IST0127) and the namespaces its rules name must exist (IST0101).
func analyzeAuthorizationPolicies(c *context) {
	podLabels := map[string][]map[string]string{}
	for _, p := range c.in.Pods {
		if c.inMesh(p.Annotations, p.Labels, p.Namespace, append(append([]Container(nil), p.Containers...), p.InitContainers...)) {
			podLabels[p.Namespace] = append(podLabels[p.Namespace], p.Labels)
		}
		if podInAmbient(p) {
			podLabels[p.Namespace] = append(podLabels[p.Namespace], p.Labels)
		}
	}
	anyMatch := func(sel selector, sets []map[string]string) bool {
		for _, l := range sets {
			if sel.matches(l) {
				return true
			}
		}
		return false
	}
	root := c.in.Mesh.GetRootNamespace()
	for _, r := range c.in.Config.List(config.AuthorizationPolicy) {
		ap := r.Spec.(*security.AuthorizationPolicy)
		switch {
		case r.Namespace == root:
			if ap.GetSelector() != nil {
				sel := selector(ap.GetSelector().GetMatchLabels())
				found := false
				for _, sets := range podLabels {
					found = found || anyMatch(sel, sets)
				}
				if !found {
					c.report(newMessage(NoMatchingWorkloadsFound, refOf(r), sel.String()))
				}
			}
		case ap.GetSelector() == nil:
			if len(podLabels[r.Namespace]) == 0 {
				c.report(newMessage(NoMatchingWorkloadsFound, refOf(r), ""))
			}
		default:
			sel := selector(ap.GetSelector().GetMatchLabels())
			if !anyMatch(sel, podLabels[r.Namespace]) {
				c.report(newMessage(NoMatchingWorkloadsFound, refOf(r), sel.String()))
			}
		}
		for _, rule := range ap.GetRules() {
			for _, from := range rule.GetFrom() {
				for _, ns := range append(append([]string(nil), from.GetSource().GetNamespaces()...), from.GetSource().GetNotNamespaces()...) {
					if !c.namespaceMatches(ns) {
						c.report(newMessage(ReferencedResourceNotFound, refOf(r), "namespace", ns))
					}
				}
			}
		}
	}
}

func (c *context) namespaceMatches(exp string) bool {
	for _, n := range c.in.Namespaces {
		if namespaceMatch(n.Name, exp) {
			return true
		}
	}
	return false
}

func namespaceMatch(ns, exp string) bool {
	if exp == "*" {
		return true
	}
	if after, ok := strings.CutPrefix(exp, "*"); ok {
		return strings.HasSuffix(ns, after)
	}
	if before, ok := strings.CutSuffix(exp, "*"); ok {
		return strings.HasPrefix(ns, before)
	}
	return strings.EqualFold(ns, exp)
}
