package analyze

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// analyzeSubsetPods: a DestinationRule's host must be a known service
// (IST0174), and each of its subsets must select at least one pod (IST0173).
func analyzeSubsetPods(c *context) {
	idx := c.hostIndex()
	type subsetMatcher struct {
		r        config.Resource
		name     string
		sel      selector
		matched  bool
		position int
	}
	var matchers []*subsetMatcher
	for _, r := range c.in.Config.List(config.DestinationRule) {
		dr := r.Spec.(*networking.DestinationRule)
		s := idx.lookup(r.Namespace, dr.GetExportTo(), dr.GetHost())
		if s == nil {
			c.report(newMessage(UnknownDestinationRuleHost, refOf(r), dr.GetHost()))
		}
		for i, ss := range dr.GetSubsets() {
			sel := selector{}
			if s != nil {
				for k, v := range s.workloadSelector {
					sel[k] = v
				}
			}
			for k, v := range ss.GetLabels() {
				sel[k] = v
			}
			matchers = append(matchers, &subsetMatcher{r: r, name: ss.GetName(), sel: sel, position: i})
		}
	}
	for _, p := range c.in.Pods {
		labels := p.Labels
		if p.NodeName != "" {
			// Istio's AugmentLabels: the node's locality and hostname.
			labels = map[string]string{}
			for k, v := range p.Labels {
				labels[k] = v
			}
			node := c.in.NodeLabels[p.NodeName]
			for _, l := range []string{"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone"} {
				if v := node[l]; v != "" {
					labels[l] = v
				}
			}
			labels["kubernetes.io/hostname"] = p.NodeName
		}
		for _, m := range matchers {
			if !m.matched && m.sel.matches(labels) {
				m.matched = true
			}
		}
	}
	for _, m := range matchers {
		if !m.matched {
			c.report(newMessage(DestinationRuleSubsetNotSelectPods, refOf(m.r), m.name))
		}
	}
}

// analyzeCACertificates: SIMPLE or MUTUAL TLS to a destination without
// caCertificates does not verify the server (IST0128, IST0129), unless a
// credentialName supplies them to a selected workload.
func analyzeCACertificates(c *context) {
	for _, r := range c.in.Config.List(config.DestinationRule) {
		dr := r.Spec.(*networking.DestinationRule)
		unverified := func(t *networking.ClientTLSSettings) bool {
			m := t.GetMode()
			if m != networking.ClientTLSSettings_SIMPLE && m != networking.ClientTLSSettings_MUTUAL {
				return false
			}
			return t.GetCaCertificates() == "" && !(t.GetCredentialName() != "" && dr.GetWorkloadSelector() != nil)
		}
		name := r.Namespace + "/" + r.Name
		if t := dr.GetTrafficPolicy().GetTls(); unverified(t) {
			c.report(newMessage(NoServerCertificateVerificationDestinationLevel, refOf(r), name, r.Namespace, t.GetMode().String(), dr.GetHost()))
		}
		for _, p := range dr.GetTrafficPolicy().GetPortLevelSettings() {
			if t := p.GetTls(); unverified(t) {
				c.report(newMessage(NoServerCertificateVerificationPortLevel, refOf(r), name, r.Namespace, t.GetMode().String(), dr.GetHost(),
					fmt.Sprintf("number:%d", p.GetPort().GetNumber())))
			}
		}
	}
}
