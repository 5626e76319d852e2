package config

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/envoypatch"
)

// envoyFilter refuses patches mastd could not apply: an applyTo Mast
// generates nothing for, an operation the applyTo does not take, a value
// that is not the Envoy type applyTo names (unknown fields and unknown
// typed_config types included), a bad proxyVersion regex. Whether a patch
// matches anything depends on the proxy: mastd warns when one does not.
func (v *validator) envoyFilter(spec *networking.EnvoyFilter) {
	if len(spec.GetConfigPatches()) == 0 {
		v.warnf("spec.configPatches", "no patches: the EnvoyFilter changes nothing")
	}
	if spec.GetWorkloadSelector() != nil && len(spec.GetTargetRefs()) > 0 {
		v.errorf("spec.targetRefs", "only one of workloadSelector and targetRefs may be set")
	}
	_, probs := envoypatch.Compile(v.r.Namespace+"/"+v.r.Name, spec)
	for _, p := range probs {
		v.errorf("spec."+p.Field, "%v", p.Err)
	}
}
