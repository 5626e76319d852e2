package analyze

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/mast-mesh/mast/internal/config"
)

// Deprecated is Istio's IST0002.
var Deprecated = MessageType{"IST0002", "Deprecated", Warning, "Deprecated: %s"}

// analyzeDeprecatedFields follows Istio's deprecation.FieldAnalyzer: a
// VirtualService's fault.delay.percent (replaced by percentage) and a
// Sidecar's outboundTrafficPolicy.egressProxy (ignored) are reported
// (IST0002). Istio also reports removed CRDs (rbac.istio.io); Mast reads no
// CustomResourceDefinitions.
func analyzeDeprecatedFields(c *context) {
	for _, r := range c.in.Config.List(config.VirtualService) {
		for _, h := range r.Spec.(*networking.VirtualService).GetHttp() {
			if h.GetFault().GetDelay().GetPercent() > 0 { //nolint:staticcheck // reporting the deprecated field is the point
				c.report(newMessage(Deprecated, refOf(r),
					"HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage"))
			}
		}
	}
	for _, r := range c.in.Config.List(config.Sidecar) {
		if r.Spec.(*networking.Sidecar).GetOutboundTrafficPolicy().GetEgressProxy() != nil {
			c.report(newMessage(Deprecated, refOf(r), "OutboundTrafficPolicy.EgressProxy ignored"))
		}
	}
}

// analyzeLightstep follows Istio's telemetry.LightstepAnalyzer: a Telemetry
// tracing through a Lightstep extension provider of the mesh config is
// reported (IST0002).
func analyzeLightstep(c *context) {
	lightstep := map[string]bool{}
	for _, p := range c.in.Mesh.GetExtensionProviders() {
		if p.GetLightstep() != nil {
			lightstep[p.GetName()] = true
		}
	}
	if len(lightstep) == 0 {
		return
	}
	for _, r := range c.in.Config.List(config.Telemetry) {
		for _, t := range r.Spec.(*telemetry.Telemetry).GetTracing() {
			for _, p := range t.GetProviders() {
				if lightstep[p.GetName()] {
					c.report(newMessage(Deprecated, refOf(r),
						fmt.Sprintf("The Lightstep provider %s is deprecated, please migrate to OpenTelemetry provider.", p.GetName())))
				}
			}
		}
	}
}
