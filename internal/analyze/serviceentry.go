package analyze

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// analyzeSEAddresses: a ServiceEntry with TCP (or unnamed-protocol) ports
// needs addresses, unless the mesh allocates them (DNS capture with auto
// allocation) or its status carries allocated ones (IST0134, once per port).
func analyzeSEAddresses(c *context) {
	md := c.in.Mesh.GetDefaultConfig().GetProxyMetadata()
	auto := md["ISTIO_META_DNS_CAPTURE"] == "true" &&
		(md["ISTIO_META_DNS_AUTO_ALLOCATE"] == "true" || md["PILOT_ENABLE_IP_AUTOALLOCATE"] == "true")
	if auto {
		return
	}
	for _, r := range c.in.Config.List(config.ServiceEntry) {
		se := r.Spec.(*networking.ServiceEntry)
		if len(se.GetAddresses()) > 0 || c.in.SEAddressesAllocated[r.Namespace+"/"+r.Name] {
			continue
		}
		for _, p := range se.GetPorts() {
			if p.GetProtocol() == "" || strings.EqualFold(p.GetProtocol(), "TCP") {
				c.report(newMessage(ServiceEntryAddressesRequired, refOf(r)))
			}
		}
	}
}

// analyzeSEProtocols: ServiceEntries visible in the same namespaces must not
// give the same host and port different protocols (IST0177).
func analyzeSEProtocols(c *context) {
	type key struct {
		scope, host string
		port        uint32
	}
	type entry struct {
		protocol string
		r        config.Resource
	}
	index := map[key][]entry{}
	var keys []key
	for _, r := range c.in.Config.List(config.ServiceEntry) {
		se := r.Spec.(*networking.ServiceEntry)
		scopes := map[string]bool{}
		if exportToAll(se.GetExportTo()) {
			scopes["*"] = true
		} else {
			for _, e := range se.GetExportTo() {
				if e == "." {
					e = r.Namespace
				}
				scopes[e] = true
			}
		}
		for _, scope := range sortedKeys(scopes) {
			for _, h := range se.GetHosts() {
				for _, p := range se.GetPorts() {
					k := key{scope, h, p.GetNumber()}
					if index[k] == nil {
						keys = append(keys, k)
					}
					index[k] = append(index[k], entry{p.GetProtocol(), r})
				}
			}
		}
	}
	reported := map[config.Key]bool{}
	for _, k := range keys {
		entries := index[k]
		if k.scope != "*" {
			entries = append(append([]entry(nil), entries...), index[key{"*", k.host, k.port}]...)
		}
		protocols := map[string]bool{}
		for _, e := range entries {
			protocols[strings.ToUpper(e.protocol)] = true
		}
		if len(protocols) < 2 {
			continue
		}
		seen := map[string]bool{}
		var ns []string
		for _, e := range entries {
			n := e.r.Namespace + "/" + e.r.Name
			if !seen[n] {
				seen[n] = true
				ns = append(ns, n)
			}
		}
		sort.Strings(ns)
		protos := sortedKeys(protocols)
		for _, e := range entries {
			if reported[e.r.Key()] {
				continue
			}
			reported[e.r.Key()] = true
			c.report(newMessage(ConflictingServiceEntryProtocol, refOf(e.r), strings.Join(ns, ", "), k.host, int(k.port), strings.Join(protos, ", ")))
		}
	}
}
