package envoyfilter

import (
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/envoypatch"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Apply applies set to the resources of typeURL generated for p and
// returns the result sorted by name. The resources in rs are not changed:
// each is cloned, so cached resources shared with other proxies stay as
// they were. Patch contexts are Istio's: GATEWAY for a gateway; for a
// sidecar SIDECAR_INBOUND for inbound listeners (virtualInbound and those
// with traffic direction INBOUND), inbound|... route configurations and
// clusters, and SIDECAR_OUTBOUND for the rest.
func Apply(set *envoypatch.Set, p *model.Proxy, typeURL string, rs []model.XDSResource, rec *envoypatch.Record) []model.XDSResource {
	gateway := p.Type == model.Router
	var out []model.XDSResource
	switch typeURL {
	case listenerType:
		var in, outb []*listenerv3.Listener
		for _, r := range rs {
			l, ok := proto.Clone(r.Resource).(*listenerv3.Listener)
			if !ok {
				continue
			}
			if !gateway && (l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND || l.GetName() == envoypatch.VirtualInbound) {
				in = append(in, l)
			} else {
				outb = append(outb, l)
			}
		}
		if gateway {
			outb = envoypatch.Listeners(set, envoypatch.Gateway, outb, false, rec)
		} else {
			in = envoypatch.Listeners(set, envoypatch.SidecarInbound, in, true, rec)
			outb = envoypatch.Listeners(set, envoypatch.SidecarOutbound, outb, false, rec)
		}
		for _, l := range append(in, outb...) {
			out = append(out, model.XDSResource{Name: l.GetName(), Resource: l})
		}
	case routeType:
		for _, r := range rs {
			rc, ok := proto.Clone(r.Resource).(*routev3.RouteConfiguration)
			if !ok {
				continue
			}
			pctx := envoypatch.SidecarOutbound
			switch {
			case gateway:
				pctx = envoypatch.Gateway
			case strings.HasPrefix(rc.GetName(), "inbound|"):
				pctx = envoypatch.SidecarInbound
			}
			envoypatch.RouteConfig(set, pctx, rc, rec)
			out = append(out, model.XDSResource{Name: rc.GetName(), Resource: rc})
		}
	case clusterType:
		var cs []*clusterv3.Cluster
		for _, r := range rs {
			if c, ok := proto.Clone(r.Resource).(*clusterv3.Cluster); ok {
				cs = append(cs, c)
			}
		}
		ctxOf := func(c *clusterv3.Cluster) networking.EnvoyFilter_PatchContext {
			switch {
			case gateway:
				return envoypatch.Gateway
			case strings.HasPrefix(c.GetName(), "inbound|"):
				return envoypatch.SidecarInbound
			}
			return envoypatch.SidecarOutbound
		}
		addCtx := envoypatch.SidecarOutbound
		if gateway {
			addCtx = envoypatch.Gateway
		}
		for _, c := range envoypatch.Clusters(set, ctxOf, addCtx, cs, rec) {
			out = append(out, model.XDSResource{Name: c.GetName(), Resource: c})
		}
	default:
		return rs
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
