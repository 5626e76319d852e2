package envoypatch

import (
	"fmt"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// Clusters applies the CLUSTER patches of s to cs. ctxOf gives each
// cluster's patch context; ADDs are appended in addCtx (Istio inserts
// clusters in the SIDECAR_OUTBOUND or GATEWAY context). Removed clusters
// are dropped; replaced ones are new messages in the result.
func Clusters(s *Set, ctxOf func(*clusterv3.Cluster) networking.EnvoyFilter_PatchContext, addCtx networking.EnvoyFilter_PatchContext,
	cs []*clusterv3.Cluster, r *Record) []*clusterv3.Cluster {
	if !s.Has(networking.EnvoyFilter_CLUSTER) {
		return cs
	}
	for i, c := range cs {
		cs[i] = patchCluster(s, ctxOf(c), c, r)
	}
	for _, p := range s.by[networking.EnvoyFilter_CLUSTER] {
		if p.Op == opAdd && ctxMatch(addCtx, p) {
			cs = append(cs, proto.Clone(p.Value).(*clusterv3.Cluster))
			r.hit(p)
		}
	}
	cs, _ = removeAll(cs, func(c *clusterv3.Cluster) bool { return c == nil })
	return cs
}

func patchCluster(s *Set, pctx networking.EnvoyFilter_PatchContext, c *clusterv3.Cluster, r *Record) *clusterv3.Cluster {
	for _, p := range s.by[networking.EnvoyFilter_CLUSTER] {
		if !ctxMatch(pctx, p) || !clusterMatch(c, p) {
			continue
		}
		switch p.Op {
		case opRemove:
			r.hit(p)
			return nil
		case opReplace:
			c = proto.Clone(p.Value).(*clusterv3.Cluster)
			r.hit(p)
		case opMerge:
			if err := mergeCluster(c, p.Value.(*clusterv3.Cluster)); err != nil {
				r.fail(p, err)
				continue
			}
			r.hit(p)
		}
	}
	return c
}

// mergeCluster merges v into c; a transport socket of the same name is
// merged inside its typed_config, as Istio does.
func mergeCluster(c, v *clusterv3.Cluster) error {
	ts, vts := c.GetTransportSocket(), v.GetTransportSocket()
	if ts == nil || vts == nil || ts.GetName() != vts.GetName() || ts.GetTypedConfig() == nil || vts.GetTypedConfig() == nil {
		return Merge(c, v)
	}
	merged, err := mergeAny(ts.GetTypedConfig(), vts.GetTypedConfig())
	if err != nil {
		return fmt.Errorf("transport_socket %s: %w", ts.GetName(), err)
	}
	rest := proto.Clone(v).(*clusterv3.Cluster)
	rest.TransportSocket = nil
	if err := Merge(c, rest); err != nil {
		return err
	}
	c.TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: merged}
	return nil
}

// clusterMatch is Istio's: name alone when given, else the service
// (host), subset and port parsed from DIRECTION|PORT|SUBSET|HOST.
func clusterMatch(c *clusterv3.Cluster, p *Patch) bool {
	m := p.Match.GetCluster()
	if m == nil {
		return true
	}
	if m.GetName() != "" {
		return m.GetName() == c.GetName()
	}
	port, subset, host := parseClusterName(c.GetName())
	if m.GetSubset() != "" && m.GetSubset() != subset {
		return false
	}
	if m.GetService() != "" && m.GetService() != host {
		return false
	}
	if m.GetPortNumber() != 0 && int(m.GetPortNumber()) != port {
		return false
	}
	return true
}

func parseClusterName(name string) (port int, subset, host string) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return 0, "", ""
	}
	port, _ = strconv.Atoi(parts[1])
	return port, parts[2], parts[3]
}
