package model

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/mast-mesh/mast/internal/registry"
)

// Multi-network meshes, as istiod splits the horizon:
//
//   - a proxy's network is its node metadata NETWORK (ISTIO_META_NETWORK);
//   - an endpoint's network is its WorkloadEntry's network (or the entry's
//     topology.istio.io/network label), else the first meshNetworks network
//     whose endpoints list a fromCidr that holds its address;
//   - a network's gateways are meshNetworks' networks.NAME.gateways (an IP
//     address, or registryServiceName: that service's addresses) and every
//     service labelled topology.istio.io/network: NAME (its addresses, on
//     the port of its label networking.istio.io/gatewayPort, else
//     15443).

// LabelNetwork is Istio's topology label naming a workload's or a
// gateway service's network.
const LabelNetwork = "topology.istio.io/network"

// LabelGatewayPort is the port of a network gateway service (Istio's
// label networking.istio.io/gatewayPort); 15443 when absent.
const LabelGatewayPort = "networking.istio.io/gatewayPort"

// DefaultGatewayPort is the network gateways' mTLS port (AUTO_PASSTHROUGH).
const DefaultGatewayPort = 15443

// NetworkGateway is one address where another network takes cross-network
// traffic.
type NetworkGateway struct {
	Network string
	Address string
	Port    uint32
}

// Network returns the proxy's network (node metadata NETWORK), "" when unset.
func (p *Proxy) Network() string { return p.Metadata["NETWORK"] }

// InNetwork reports whether the proxy reaches network directly: as in
// istiod, an unset network on either side counts as the same network.
func (p *Proxy) InNetwork(network string) bool {
	return network == "" || p.Network() == "" || network == p.Network()
}

// networkIndex is the push's view of meshNetworks and gateway services.
type networkIndex struct {
	gateways map[string][]NetworkGateway // by network, sorted by address and port
	cidrs    []networkCIDR               // meshNetworks endpoints fromCidr, in order
	scale    uint32                      // lcm of every network's gateway count
}

type networkCIDR struct {
	network string
	prefix  netip.Prefix
}

func buildNetworkIndex(mn *meshconfig.MeshNetworks, services []*registry.Service) *networkIndex {
	ni := &networkIndex{gateways: map[string][]NetworkGateway{}, scale: 1}
	byHost := map[string][]*registry.Service{}
	for _, s := range services {
		byHost[s.Hostname] = append(byHost[s.Hostname], s)
	}
	add := func(gw NetworkGateway) {
		if gw.Port == 0 || gw.Address == "" {
			return
		}
		if _, err := netip.ParseAddr(gw.Address); err != nil {
			return // a hostname: warned about when the mesh config was read
		}
		if !slices.Contains(ni.gateways[gw.Network], gw) {
			ni.gateways[gw.Network] = append(ni.gateways[gw.Network], gw)
		}
	}
	for _, name := range sortedKeys(mn.GetNetworks()) {
		n := mn.GetNetworks()[name]
		for _, ep := range n.GetEndpoints() {
			if c := ep.GetFromCidr(); c != "" {
				if p, err := netip.ParsePrefix(c); err == nil {
					ni.cidrs = append(ni.cidrs, networkCIDR{network: name, prefix: p.Masked()})
				}
			}
		}
		for _, g := range n.GetGateways() {
			if a := g.GetAddress(); a != "" {
				add(NetworkGateway{Network: name, Address: a, Port: g.GetPort()})
				continue
			}
			for _, s := range byHost[g.GetRegistryServiceName()] {
				for _, a := range s.Addresses {
					add(NetworkGateway{Network: name, Address: a, Port: g.GetPort()})
				}
			}
		}
	}
	for _, s := range services {
		name := s.Labels[LabelNetwork]
		if name == "" {
			continue
		}
		port := uint32(DefaultGatewayPort)
		if v, err := strconv.ParseUint(s.Labels[LabelGatewayPort], 10, 16); err == nil && v > 0 {
			port = uint32(v)
		}
		for _, a := range s.Addresses {
			add(NetworkGateway{Network: name, Address: a, Port: port})
		}
	}
	for name, gws := range ni.gateways {
		slices.SortFunc(gws, func(a, b NetworkGateway) int {
			return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
		})
		ni.scale = lcm(ni.scale, uint32(len(gws)))
		ni.gateways[name] = gws
	}
	return ni
}

func lcm(a, b uint32) uint32 {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	if x == 0 {
		return max(a, b, 1)
	}
	if l := uint64(a/x) * uint64(b); l <= 1<<16 {
		return uint32(l)
	}
	return a // beyond 65536 the weights would overflow: stop scaling further
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// MultiNetwork reports whether any network has a gateway: only then does
// the horizon split (istiod's IsMultiNetworkEnabled).
func (pc *PushContext) MultiNetwork() bool { return len(pc.ix().networks.gateways) > 0 }

// NetworkGateways returns the gateways of network, sorted; nil when none.
func (pc *PushContext) NetworkGateways(network string) []NetworkGateway {
	return pc.ix().networks.gateways[network]
}

// GatewayWeightScale is the factor every endpoint weight is multiplied by
// before it is split evenly among its network's gateways (the least common
// multiple of the gateway counts, as istiod).
func (pc *PushContext) GatewayWeightScale() uint32 { return pc.ix().networks.scale }

// EndpointNetwork returns ep's network: its own, else that of the first
// meshNetworks fromCidr holding its address.
func (pc *PushContext) EndpointNetwork(ep *registry.Endpoint) string {
	if ep.Network != "" {
		return ep.Network
	}
	cidrs := pc.ix().networks.cidrs
	if len(cidrs) == 0 {
		return ""
	}
	a, err := netip.ParseAddr(ep.Address)
	if err != nil {
		return ""
	}
	for _, c := range cidrs {
		if c.prefix.Contains(a.Unmap()) {
			return c.network
		}
	}
	return ""
}

// ValidateMeshNetworks checks meshNetworks as istiod does, naming each bad
// field (meshNetworks.networks.NAME.gateways[i].port); warnings name what
// Mast does not carry out.
func ValidateMeshNetworks(mn *meshconfig.MeshNetworks) (errs, warnings []string) {
	for _, name := range sortedKeys(mn.GetNetworks()) {
		n := mn.GetNetworks()[name]
		base := "meshNetworks.networks." + name
		if n == nil {
			continue
		}
		for i, ep := range n.GetEndpoints() {
			f := fmt.Sprintf("%s.endpoints[%d]", base, i)
			switch {
			case ep.GetFromCidr() != "":
				if _, err := netip.ParsePrefix(ep.GetFromCidr()); err != nil {
					errs = append(errs, fmt.Sprintf("%s.fromCidr: %q is not a CIDR", f, ep.GetFromCidr()))
				}
			case ep.GetFromRegistry() != "":
				warnings = append(warnings, fmt.Sprintf("%s.fromRegistry: not honoured by Mast (endpoints take their network from WorkloadEntry network, the topology.istio.io/network label or fromCidr)", f))
			default:
				errs = append(errs, f+": one of fromCidr or fromRegistry is required")
			}
		}
		for i, g := range n.GetGateways() {
			f := fmt.Sprintf("%s.gateways[%d]", base, i)
			if g.GetPort() == 0 || g.GetPort() > 65535 {
				errs = append(errs, fmt.Sprintf("%s.port: %d is not a port (1-65535)", f, g.GetPort()))
			}
			switch {
			case g.GetAddress() != "":
				if _, err := netip.ParseAddr(g.GetAddress()); err != nil {
					if !validHostname(g.GetAddress()) {
						errs = append(errs, fmt.Sprintf("%s.address: %q is neither an IP address nor a hostname", f, g.GetAddress()))
					} else {
						warnings = append(warnings, fmt.Sprintf("%s.address: hostname %q is not resolved by Mast; the gateway is not used (give its IP address)", f, g.GetAddress()))
					}
				}
			case g.GetRegistryServiceName() != "":
				if !validHostname(g.GetRegistryServiceName()) {
					errs = append(errs, fmt.Sprintf("%s.registryServiceName: %q is not a hostname", f, g.GetRegistryServiceName()))
				}
			default:
				errs = append(errs, f+": one of address or registryServiceName is required")
			}
			if g.GetLocality() != "" {
				warnings = append(warnings, f+".locality: not honoured by Mast (gateway endpoints carry no locality, as in istiod)")
			}
		}
	}
	return errs, warnings
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
