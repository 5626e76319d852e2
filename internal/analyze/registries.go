package analyze

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// HostInSeveralRegistries is Mast's own message (Istio has no Consul or
// Eureka registry to conflict with): a hostname that several service
// registries have belongs to one of them, by the rule docs/registries.md
// gives, and the others' services and endpoints for it are ignored.
var HostInSeveralRegistries = MessageType{"MST0001", "HostInSeveralRegistries", Warning,
	"The host %s is in several service registries (%s): %s owns it, and the services and endpoints the others (%s) have for it are ignored."}

// RegistryConflict is a hostname several running registries have, as
// mastd's /debug/registryz reports it.
type RegistryConflict struct {
	Hostname string   `json:"hostname"`
	Owner    string   `json:"owner"`
	Shadowed []string `json:"shadowed"`
}

// analyzeRegistryHosts reports hostnames present in several registries:
// a ServiceEntry host that is also a Kubernetes Service's name in the files,
// and the conflicts a running mastd reports (Input.RegistryConflicts).
// ServiceEntries own their hosts (they come first), then registries in
// mastd's --registry order.
func analyzeRegistryHosts(c *context) {
	kube := map[string]bool{}
	for _, s := range c.in.Services {
		kube[s.Name+"."+s.Namespace+"."+clusterDomain] = true
	}
	entries := map[string]Ref{}
	for _, r := range c.in.Config.List(config.ServiceEntry) {
		for _, h := range r.Spec.(*networking.ServiceEntry).GetHosts() {
			if _, ok := entries[h]; !ok {
				entries[h] = refOf(r)
			}
			if kube[h] {
				c.report(newMessage(HostInSeveralRegistries, refOf(r), h, "serviceentry, kubernetes", "serviceentry", "kubernetes"))
			}
		}
	}
	conflicts := append([]RegistryConflict(nil), c.in.RegistryConflicts...)
	sort.Slice(conflicts, func(i, j int) bool { return conflicts[i].Hostname < conflicts[j].Hostname })
	for _, rc := range conflicts {
		ref, ok := entries[rc.Hostname]
		if !ok || rc.Owner != "serviceentry" {
			ref = Ref{Kind: "Registry", Name: rc.Owner}
		}
		all := append([]string{rc.Owner}, rc.Shadowed...)
		c.report(newMessage(HostInSeveralRegistries, ref, rc.Hostname, strings.Join(all, ", "), rc.Owner, strings.Join(rc.Shadowed, ", ")))
	}
}
