package analyze

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// service is what a host resolves to: a ServiceEntry, or a Kubernetes
// Service seen as one (Istio's InitServiceEntryHostMap).
type service struct {
	ports            []*networking.ServicePort
	workloadSelector map[string]string
}

// hostIndex maps "scope/fqdn" to the service that defines the host there;
// scope is "*" (exported everywhere) or a namespace.
type hostIndex map[string]*service

func scoped(scope, ns, host string) string { return scope + "/" + fqdn(ns, host) }

func (c *context) hostIndex() hostIndex {
	idx := hostIndex{}
	for _, r := range c.in.Config.List(config.ServiceEntry) {
		se := r.Spec.(*networking.ServiceEntry)
		s := &service{ports: se.GetPorts(), workloadSelector: se.GetWorkloadSelector().GetLabels()}
		for _, h := range se.GetHosts() {
			if len(se.GetExportTo()) == 0 {
				idx[scoped("*", r.Namespace, h)] = s
				continue
			}
			for _, e := range se.GetExportTo() {
				switch e {
				case "*":
					idx[scoped("*", r.Namespace, h)] = s
				case ".":
					idx[scoped(r.Namespace, r.Namespace, h)] = s
				default:
					idx[scoped(e, r.Namespace, h)] = s
				}
				if e == "*" {
					break
				}
			}
		}
	}
	for _, svc := range c.in.Services {
		s := &service{}
		for _, p := range svc.Ports {
			s.ports = append(s.ports, &networking.ServicePort{Number: uint32(p.Port), Name: p.Name, Protocol: p.Protocol})
		}
		scopes := []string{"*"}
		if anno := svc.Annotations["networking.istio.io/exportTo"]; anno != "" {
			scopes = nil
			for _, e := range strings.Split(anno, ",") {
				if e = strings.TrimSpace(e); e == "." {
					e = svc.Namespace
				}
				scopes = append(scopes, e)
			}
		}
		for _, scope := range scopes {
			idx[scoped(scope, svc.Namespace, svc.Name)] = s
		}
	}
	return idx
}

// lookup is Istio's GetDestinationHost: the service a host names from
// namespace ns, for a resource exported to exportTo; nil when none.
func (idx hostIndex) lookup(ns string, exportTo []string, host string) *service {
	if s, ok := idx[scoped("*", ns, host)]; ok {
		return s
	}
	if len(exportTo) == 0 {
		if s, ok := idx[scoped(ns, ns, host)]; ok {
			return s
		}
	} else {
		for _, e := range exportTo {
			if e == "." {
				e = ns
			}
			if s, ok := idx[scoped(e, ns, host)]; ok {
				return s
			}
		}
	}
	keys := make([]string, 0, len(idx))
	for k := range idx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		scope, seHost, _ := strings.Cut(k, "/")
		if !strings.HasPrefix(seHost, "*") || (scope != "*" && scope != ns) {
			continue
		}
		if strings.HasSuffix(strings.TrimPrefix(host, "*"), strings.TrimPrefix(seHost, "*")) {
			return idx[k]
		}
	}
	return nil
}
