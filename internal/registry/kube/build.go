// Package kube is the Kubernetes service registry: Services, EndpointSlices,
// Pods, Nodes and Namespaces, read through client-go informers, become
// registry services and endpoints the way Istio's Kubernetes registry makes
// them.
package kube

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/mast-mesh/mast/internal/registry"
)

// Name is the registry name services from Kubernetes carry.
const Name = "kubernetes"

// Labels and annotations Istio reads from Kubernetes objects.
const (
	LabelCanonicalName     = "service.istio.io/canonical-name"
	LabelCanonicalRevision = "service.istio.io/canonical-revision"
	LabelNetwork           = "topology.istio.io/network"
	LabelSubzone           = "topology.istio.io/subzone"
	LabelLocality          = "istio-locality" // pod label overriding the node's locality, "region.zone.subzone"
	AnnotationExportTo     = "networking.istio.io/exportTo"
	AnnotationServiceAccts = "alpha.istio.io/canonical-serviceaccounts"
)

// Options are the mesh settings Build needs.
type Options struct {
	DomainSuffix string // "cluster.local" when empty
	TrustDomain  string // "cluster.local" when empty
}

// Input is the cluster state a snapshot is built from. Build does not modify it.
type Input struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Pods           []*corev1.Pod
	Nodes          []*corev1.Node
	Namespaces     []*corev1.Namespace
}

// Build converts the cluster state into a registry snapshot. It is a pure
// function of in and opts.
//
//   - Each Service is one service, hostname NAME.NAMESPACE.svc.SUFFIX, its
//     cluster IPs as addresses (none for a headless Service, which resolves
//     to the original destination). An ExternalName Service is mesh-external
//     with DNS resolution and one endpoint per port at the external name.
//   - A port's protocol comes from appProtocol (Istio's and Kubernetes'
//     names, kubernetes.io/h2c and kubernetes.io/ws), else from its name's
//     prefix (http-, grpc-, tcp-, ...). UDP and SCTP ports are left out.
//   - Endpoints come from the EndpointSlices labelled with the Service's
//     name: an endpoint is used when it is ready (a missing condition counts
//     as ready), or, for a Service with publishNotReadyAddresses, whatever its
//     conditions say. Serving-but-terminating endpoints are left out, as in
//     Istio. The port on the endpoint is the slice port of the same name,
//     which is how named targetPorts resolve. IPv4 and IPv6 slices both count.
//   - An endpoint whose targetRef is a Pod gets the Pod's labels, with
//     service.istio.io/canonical-name and canonical-revision filled in as
//     Istio does, the SPIFFE identity of its service account, and the
//     locality of its Node (topology.kubernetes.io/region, zone and
//     topology.istio.io/subzone; the pod label istio-locality overrides).
//     Its network is the namespace's topology.istio.io/network label.
//   - A Service's service accounts are the identities of its endpoints'
//     pods, plus the alpha.istio.io/canonical-serviceaccounts annotation.
func Build(in Input, opts Options) *registry.Snapshot {
	suffix := cmp.Or(opts.DomainSuffix, "cluster.local")
	td := cmp.Or(opts.TrustDomain, "cluster.local")
	pods := make(map[string]*corev1.Pod, len(in.Pods))
	for _, p := range in.Pods {
		pods[p.Namespace+"/"+p.Name] = p
	}
	nodes := make(map[string]*corev1.Node, len(in.Nodes))
	for _, n := range in.Nodes {
		nodes[n.Name] = n
	}
	networks := map[string]string{}
	for _, ns := range in.Namespaces {
		if n := ns.Labels[LabelNetwork]; n != "" {
			networks[ns.Name] = n
		}
	}
	slicesBySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range in.EndpointSlices {
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			k := s.Namespace + "/" + name
			slicesBySvc[k] = append(slicesBySvc[k], s)
		}
	}

	out := &registry.Snapshot{Services: make([]*registry.Service, 0, len(in.Services)), Endpoints: make(map[string][]*registry.Endpoint, len(in.Services))}
	for _, ks := range in.Services {
		svc := convertService(ks, suffix)
		if svc == nil {
			continue
		}
		var eps []*registry.Endpoint
		if ks.Spec.Type == corev1.ServiceTypeExternalName {
			for _, p := range svc.Ports {
				eps = append(eps, &registry.Endpoint{Hostname: svc.Hostname, ServicePort: p.Number, Address: ks.Spec.ExternalName, Port: p.Number})
			}
		} else {
			eps = endpoints(ks, svc, slicesBySvc[ks.Namespace+"/"+ks.Name], pods, nodes, networks[ks.Namespace], td)
		}
		sas := map[string]bool{}
		for _, e := range eps {
			if e.ServiceAccount != "" {
				sas[e.ServiceAccount] = true
			}
		}
		for _, a := range strings.Split(ks.Annotations[AnnotationServiceAccts], ",") {
			if a = strings.TrimSpace(a); a != "" {
				sas[a] = true
			}
		}
		for sa := range sas {
			svc.ServiceAccounts = append(svc.ServiceAccounts, sa)
		}
		slices.Sort(svc.ServiceAccounts)
		out.Services = append(out.Services, svc)
		// Several namespaces with one hostname cannot happen here: the
		// namespace is part of the hostname.
		if len(eps) > 0 {
			slices.SortFunc(eps, func(a, b *registry.Endpoint) int {
				return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port), cmp.Compare(a.ServicePort, b.ServicePort))
			})
			out.Endpoints[svc.Hostname] = eps
		}
	}
	slices.SortFunc(out.Services, func(a, b *registry.Service) int {
		return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Namespace, b.Namespace))
	})
	return out
}

func convertService(ks *corev1.Service, suffix string) *registry.Service {
	svc := &registry.Service{
		Hostname:  ks.Name + "." + ks.Namespace + ".svc." + suffix,
		Namespace: ks.Namespace,
		Labels:    ks.Labels,
		ExportTo:  []string{"*"},
		Registry:  Name,
	}
	if v := ks.Annotations[AnnotationExportTo]; v != "" {
		svc.ExportTo = nil
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				svc.ExportTo = append(svc.ExportTo, e)
			}
		}
	}
	switch {
	case ks.Spec.Type == corev1.ServiceTypeExternalName:
		if ks.Spec.ExternalName == "" {
			return nil
		}
		svc.Resolution = registry.ResolutionDNS
		svc.MeshExternal = true
	case ks.Spec.ClusterIP == corev1.ClusterIPNone:
		svc.Resolution = registry.ResolutionNone
	default:
		svc.Resolution = registry.ResolutionStatic
		ips := ks.Spec.ClusterIPs
		if len(ips) == 0 && ks.Spec.ClusterIP != "" {
			ips = []string{ks.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if net.ParseIP(ip) != nil {
				svc.Addresses = append(svc.Addresses, ip)
			}
		}
	}
	for _, p := range ks.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue // UDP and SCTP are not proxied
		}
		port := registry.Port{Name: p.Name, Number: uint32(p.Port), Protocol: PortProtocol(p)}
		if p.TargetPort.IntValue() > 0 {
			port.TargetPort = uint32(p.TargetPort.IntValue())
		}
		svc.Ports = append(svc.Ports, port)
	}
	return svc
}

// PortProtocol is a Service port's protocol as Istio derives it: appProtocol
// first, then the port name's prefix.
func PortProtocol(p corev1.ServicePort) registry.Protocol {
	if p.AppProtocol != nil && *p.AppProtocol != "" {
		switch ap := strings.ToLower(*p.AppProtocol); ap {
		case "kubernetes.io/h2c":
			return registry.HTTP2
		case "kubernetes.io/ws", "kubernetes.io/wss":
			return registry.HTTP
		default:
			if pr := registry.ParseProtocol(ap); pr != registry.Unknown {
				return pr
			}
		}
	}
	return registry.ProtocolFromPortName(p.Name)
}

func endpoints(ks *corev1.Service, svc *registry.Service, slcs []*discoveryv1.EndpointSlice, pods map[string]*corev1.Pod,
	nodes map[string]*corev1.Node, network, td string) []*registry.Endpoint {
	var out []*registry.Endpoint
	seen := map[string]bool{} // address/port/service port: one endpoint in two slices counts once
	for _, s := range slcs {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, e := range s.Endpoints {
			if !usable(e.Conditions, ks.Spec.PublishNotReadyAddresses) {
				continue
			}
			var pod *corev1.Pod
			if r := e.TargetRef; r != nil && r.Kind == "Pod" {
				pod = pods[cmp.Or(r.Namespace, s.Namespace)+"/"+r.Name]
			}
			labels, sa, locality := podAttributes(pod, e, nodes, td)
			for _, sp := range svc.Ports {
				port, ok := slicePort(s, sp)
				if !ok {
					continue
				}
				for _, addr := range e.Addresses {
					k := addr + "/" + strconv.Itoa(int(port)) + "/" + strconv.Itoa(int(sp.Number))
					if seen[k] {
						continue
					}
					seen[k] = true
					out = append(out, &registry.Endpoint{
						Hostname: svc.Hostname, ServicePort: sp.Number, Address: addr, Port: port,
						Labels: labels, Locality: locality, ServiceAccount: sa, Network: network,
					})
				}
			}
		}
	}
	return out
}

// usable says whether an endpoint receives traffic.
func usable(c discoveryv1.EndpointConditions, publishNotReady bool) bool {
	if publishNotReady {
		return true
	}
	if c.Terminating != nil && *c.Terminating {
		return false
	}
	return c.Ready == nil || *c.Ready
}

// slicePort is the port on the endpoint for service port sp: the slice port of
// the same name (the EndpointSlice controller names slice ports after service
// ports and resolves named targetPorts into them).
func slicePort(s *discoveryv1.EndpointSlice, sp registry.Port) (uint32, bool) {
	for _, p := range s.Ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if name != sp.Name || p.Port == nil {
			continue
		}
		if p.Protocol != nil && *p.Protocol != "" && *p.Protocol != "TCP" {
			continue
		}
		return uint32(*p.Port), true
	}
	return 0, false
}

// podAttributes returns an endpoint's labels, SPIFFE identity and locality.
func podAttributes(pod *corev1.Pod, e discoveryv1.Endpoint, nodes map[string]*corev1.Node, td string) (map[string]string, string, string) {
	nodeName := ""
	if e.NodeName != nil {
		nodeName = *e.NodeName
	}
	var labels map[string]string
	sa := ""
	if pod != nil {
		labels = canonicalLabels(pod)
		sa = "spiffe://" + td + "/ns/" + pod.Namespace + "/sa/" + cmp.Or(pod.Spec.ServiceAccountName, "default")
		nodeName = cmp.Or(nodeName, pod.Spec.NodeName)
		if l := pod.Labels[LabelLocality]; l != "" {
			return labels, sa, strings.ReplaceAll(l, ".", "/")
		}
	}
	locality := ""
	if n := nodes[nodeName]; n != nil {
		locality = strings.TrimRight(n.Labels[corev1.LabelTopologyRegion]+"/"+n.Labels[corev1.LabelTopologyZone]+"/"+n.Labels[LabelSubzone], "/")
	} else if e.Zone != nil {
		locality = "/" + *e.Zone
	}
	return labels, sa, locality
}

// canonicalLabels returns the pod's labels with Istio's canonical service
// name and revision added when the pod does not set them: the name from
// app.kubernetes.io/name, app, or the pod's owner name without its pod
// template hash; the revision from app.kubernetes.io/version, version, or
// "latest".
func canonicalLabels(pod *corev1.Pod) map[string]string {
	name, rev := pod.Labels[LabelCanonicalName], pod.Labels[LabelCanonicalRevision]
	if name != "" && rev != "" {
		return pod.Labels
	}
	out := make(map[string]string, len(pod.Labels)+2)
	for k, v := range pod.Labels {
		out[k] = v
	}
	if name == "" {
		name = cmp.Or(pod.Labels["app.kubernetes.io/name"], pod.Labels["app"], workloadName(pod))
		out[LabelCanonicalName] = name
	}
	if rev == "" {
		out[LabelCanonicalRevision] = cmp.Or(pod.Labels["app.kubernetes.io/version"], pod.Labels["version"], "latest")
	}
	return out
}

// workloadName is the name of the pod's workload: a ReplicaSet owner's name
// without its hash suffix (the Deployment's name), another owner's name, or
// the pod's own name.
func workloadName(pod *corev1.Pod) string {
	for _, o := range pod.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" {
			if h := pod.Labels["pod-template-hash"]; h != "" {
				return strings.TrimSuffix(o.Name, "-"+h)
			}
		}
		return o.Name
	}
	return pod.Name
}
