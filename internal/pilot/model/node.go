package model

import (
	"fmt"
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// ParseNode builds a Proxy from an xDS node. The ID must be
// TYPE~IP~NAME.NAMESPACE~DOMAIN with TYPE sidecar or router; metadata keys
// follow Istio (NAMESPACE, LABELS, SERVICE_ACCOUNT, GENERATOR, INSTANCE_IPS).
func ParseNode(n *corev3.Node) (*Proxy, error) {
	if n == nil || n.GetId() == "" {
		return nil, fmt.Errorf("node: missing node id")
	}
	parts := strings.Split(n.GetId(), "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node id %q: want TYPE~IP~NAME.NAMESPACE~DOMAIN", n.GetId())
	}
	p := &Proxy{ID: n.GetId(), DNSDomain: parts[3], Labels: map[string]string{}, Metadata: map[string]string{}}
	switch NodeType(parts[0]) {
	case SidecarProxy, Router:
		p.Type = NodeType(parts[0])
	default:
		return nil, fmt.Errorf("node id %q: type %q is not sidecar or router", n.GetId(), parts[0])
	}
	if parts[1] != "" {
		if _, err := netip.ParseAddr(parts[1]); err != nil {
			return nil, fmt.Errorf("node id %q: IP %q: %v", n.GetId(), parts[1], err)
		}
		p.IPAddresses = []string{parts[1]}
	}
	if i := strings.LastIndexByte(parts[2], '.'); i >= 0 {
		p.Name, p.Namespace = parts[2][:i], parts[2][i+1:]
	} else {
		p.Name = parts[2]
	}
	md := n.GetMetadata().GetFields()
	for k, v := range md {
		if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			p.Metadata[k] = s.StringValue
		}
	}
	if ns := p.Metadata["NAMESPACE"]; ns != "" {
		p.Namespace = ns
	}
	if p.Namespace == "" {
		if i := strings.IndexByte(p.DNSDomain, '.'); i > 0 {
			p.Namespace = p.DNSDomain[:i]
		}
	}
	if p.Namespace == "" {
		return nil, fmt.Errorf("node id %q: no namespace in id or metadata", n.GetId())
	}
	for k, v := range md["LABELS"].GetStructValue().GetFields() {
		p.Labels[k] = v.GetStringValue()
	}
	if l := n.GetLocality(); l.GetRegion() != "" {
		p.Locality = l.GetRegion() + "/" + l.GetZone() + "/" + l.GetSubZone()
	} else if r := p.Labels["topology.kubernetes.io/region"]; r != "" {
		p.Locality = r + "/" + p.Labels["topology.kubernetes.io/zone"] + "/" + p.Labels["topology.istio.io/subzone"]
	}
	p.ServiceAccount = p.Metadata["SERVICE_ACCOUNT"]
	p.Generator = p.Metadata["GENERATOR"]
	if ips := p.Metadata["INSTANCE_IPS"]; ips != "" {
		p.IPAddresses = strings.Split(ips, ",")
	}
	return p, nil
}
