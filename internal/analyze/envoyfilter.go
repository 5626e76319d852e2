package analyze

import (
	"sort"

	networking "istio.io/api/networking/v1alpha3"
)

// analyzeEnvoyFilters follows Istio's EnvoyPatchAnalyzer: ADD or REMOVE on
// routes is ignored (IST0153, IST0154), REPLACE only works on filters and
// virtual hosts (IST0152), and relative operations without a priority may
// not apply (IST0151; IST0155 when a proxyVersion match is set).
func analyzeEnvoyFilters(c *context) {
	efs := append([]*EnvoyFilter(nil), c.in.EnvoyFilters...)
	sort.SliceStable(efs, func(i, j int) bool {
		if efs[i].Namespace != efs[j].Namespace {
			return efs[i].Namespace < efs[j].Namespace
		}
		return efs[i].Name < efs[j].Name
	})
	var versioned []string // instance names of patches with a proxyVersion match, so far
	for _, ef := range efs {
		for i, patch := range ef.Spec.GetConfigPatches() {
			if patch.GetPatch() == nil {
				break
			}
			ref := ef.Ref()
			if i < len(ef.PatchLines) {
				ref.Line = ef.PatchLines[i]
			}
			name := ""
			if fields := patch.GetPatch().GetValue().GetFields(); fields != nil {
				if n, ok := fields["name"]; ok {
					name = "value:" + n.GetStringValue()
				} else {
					name = "filter:" + patch.GetMatch().GetListener().GetFilterChain().GetFilter().GetName()
				}
			}
			relative := func() {
				if ef.Spec.GetPriority() != 0 {
					return
				}
				t := EnvoyFilterUsesRelativeOperation
				for _, v := range versioned {
					if v == name {
						t = EnvoyFilterUsesRelativeOperationWithProxyVersion
						break
					}
				}
				c.report(newMessage(t, ref))
			}
			onRoutes := patch.GetApplyTo() == networking.EnvoyFilter_ROUTE_CONFIGURATION || patch.GetApplyTo() == networking.EnvoyFilter_HTTP_ROUTE
			switch patch.GetPatch().GetOperation() {
			case networking.EnvoyFilter_Patch_ADD:
				if onRoutes {
					c.report(newMessage(EnvoyFilterUsesAddOperationIncorrectly, ref))
				}
			case networking.EnvoyFilter_Patch_REMOVE:
				if onRoutes {
					c.report(newMessage(EnvoyFilterUsesRemoveOperationIncorrectly, ref))
				} else {
					relative()
				}
			case networking.EnvoyFilter_Patch_REPLACE:
				switch patch.GetApplyTo() {
				case networking.EnvoyFilter_NETWORK_FILTER, networking.EnvoyFilter_HTTP_FILTER, networking.EnvoyFilter_VIRTUAL_HOST:
					relative()
				default:
					c.report(newMessage(EnvoyFilterUsesReplaceOperationIncorrectly, ref))
				}
			case networking.EnvoyFilter_Patch_INSERT_BEFORE, networking.EnvoyFilter_Patch_INSERT_AFTER:
				relative()
			}
			if patch.GetMatch().GetProxy().GetProxyVersion() != "" {
				versioned = append(versioned, name)
			}
		}
	}
}
