package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/registry"
)

func TestMeshNetworksFromMeshConfig(t *testing.T) {
	// As a mapping and, as in the istio ConfigMap, as a YAML string.
	for _, doc := range []string{`
trustDomain: example.org
meshNetworks:
  networks:
    network-1:
      endpoints: [{fromCidr: 10.1.0.0/16}]
      gateways: [{address: 192.0.2.1, port: 15443}]
    network-2:
      endpoints: [{fromRegistry: Kubernetes}]
      gateways: [{registryServiceName: eastwest.istio-system.svc.cluster.local, port: 15443}, {address: gw.example.org, port: 15443}]
`, `
trustDomain: example.org
meshNetworks: |
  networks:
    network-1:
      endpoints: [{fromCidr: 10.1.0.0/16}]
      gateways: [{address: 192.0.2.1, port: 15443}]
    network-2:
      endpoints: [{fromRegistry: Kubernetes}]
      gateways: [{registryServiceName: eastwest.istio-system.svc.cluster.local, port: 15443}, {address: gw.example.org, port: 15443}]
`} {
		mc, warnings, err := ParseMeshConfig("mesh.yaml", []byte(doc), DefaultMeshConfig())
		if err != nil {
			t.Fatal(err)
		}
		if mc.TrustDomain != "example.org" || len(mc.MeshNetworks.GetNetworks()) != 2 {
			t.Fatalf("mesh config %+v", mc)
		}
		want := []string{
			"mesh config mesh.yaml: meshNetworks.networks.network-2.endpoints[0].fromRegistry: not honoured by Mast",
			"mesh config mesh.yaml: meshNetworks.networks.network-2.gateways[1].address: hostname \"gw.example.org\" is not resolved by Mast",
		}
		for _, w := range want {
			if !slices.ContainsFunc(warnings, func(s string) bool { return strings.HasPrefix(s, w) }) {
				t.Errorf("warnings %q lack %q", warnings, w)
			}
		}
		for _, w := range warnings {
			if strings.Contains(w, "meshNetworks: not honoured") {
				t.Errorf("meshNetworks reported as not honoured: %q", w)
			}
		}
		eastwest := &registry.Service{Hostname: "eastwest.istio-system.svc.cluster.local", Addresses: []string{"192.0.2.9"}}
		labelled := &registry.Service{Hostname: "gw3.istio-system.svc.cluster.local", Addresses: []string{"192.0.2.7"},
			Labels: map[string]string{LabelNetwork: "network-3"}}
		pc := NewPushContext("v", mc, nil, &registry.Snapshot{Services: []*registry.Service{eastwest, labelled}})
		if !pc.MultiNetwork() {
			t.Fatal("not multi-network")
		}
		for nw, want := range map[string][]NetworkGateway{
			"network-1": {{"network-1", "192.0.2.1", 15443}},
			"network-2": {{"network-2", "192.0.2.9", 15443}}, // the hostname is skipped
			"network-3": {{"network-3", "192.0.2.7", 15443}},
		} {
			if got := pc.NetworkGateways(nw); !slices.Equal(got, want) {
				t.Errorf("%s gateways %v, want %v", nw, got, want)
			}
		}
		if got := pc.EndpointNetwork(&registry.Endpoint{Address: "10.1.2.3"}); got != "network-1" {
			t.Errorf("fromCidr network %q", got)
		}
		if got := pc.EndpointNetwork(&registry.Endpoint{Address: "10.1.2.3", Network: "own"}); got != "own" {
			t.Errorf("an endpoint's own network lost: %q", got)
		}
	}
}

func TestMeshNetworksErrorsNameTheField(t *testing.T) {
	for doc, want := range map[string]string{
		`meshNetworks: {networks: {n1: {gateways: [{address: 192.0.2.1}]}}}`:              "meshNetworks.networks.n1.gateways[0].port: 0 is not a port",
		`meshNetworks: {networks: {n1: {gateways: [{address: 192.0.2.1, port: 70000}]}}}`: "meshNetworks.networks.n1.gateways[0].port: 70000 is not a port",
		`meshNetworks: {networks: {n1: {gateways: [{port: 15443}]}}}`:                     "meshNetworks.networks.n1.gateways[0]: one of address or registryServiceName is required",
		`meshNetworks: {networks: {n1: {gateways: [{address: "no way!", port: 15443}]}}}`: "meshNetworks.networks.n1.gateways[0].address: \"no way!\" is neither",
		`meshNetworks: {networks: {n1: {endpoints: [{fromCidr: 10.0.0.0/99}]}}}`:          "meshNetworks.networks.n1.endpoints[0].fromCidr: \"10.0.0.0/99\" is not a CIDR",
		`meshNetworks: {networks: {n1: {endpoints: [{}]}}}`:                               "meshNetworks.networks.n1.endpoints[0]: one of fromCidr or fromRegistry is required",
		`meshNetworks: {networks: {n1: {gateway: [{address: 192.0.2.1, port: 15443}]}}}`:  "meshNetworks: ",
		`meshNetworks: [a, b]`: "meshNetworks: want a mapping with networks",
		`meshNetworks: {networks: {n1: {gateways: [{registryServiceName: "a b", port: 1}]}}}`: "registryServiceName: \"a b\" is not a hostname",
	} {
		_, _, err := ParseMeshConfig("mesh.yaml", []byte(doc), DefaultMeshConfig())
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "mesh.yaml") {
			t.Errorf("%s: error %v, want one naming the file and %q", doc, err, want)
		}
	}
}

// FuzzParseMeshConfig: mesh config files, meshNetworks included, come from
// operators and ConfigMaps; the parser must never panic, and whatever it
// accepts must index without panicking.
func FuzzParseMeshConfig(f *testing.F) {
	for _, s := range []string{
		"trustDomain: example.org\n",
		"meshNetworks: {networks: {n1: {endpoints: [{fromCidr: 10.1.0.0/16}], gateways: [{address: 192.0.2.1, port: 15443}]}}}\n",
		"meshNetworks: |\n  networks:\n    n2: {gateways: [{registryServiceName: gw.ns.svc.cluster.local, port: 15443}]}\n",
		"meshNetworks: {networks: {n1: {gateways: [{address: 192.0.2.1, port: 0}]}}}\n",
		"meshNetworks: 3\n",
		"meshNetworks:\n",
		"disablePolicyChecks: true\npathNormalization: {normalization: MERGE_SLASHES}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mc, _, err := ParseMeshConfig("fuzz.yaml", data, DefaultMeshConfig())
		if err != nil {
			return
		}
		pc := NewPushContext("v", mc, nil, &registry.Snapshot{Services: []*registry.Service{{Hostname: "gw.ns.svc.cluster.local", Addresses: []string{"192.0.2.1"}}}})
		for name := range mc.MeshNetworks.GetNetworks() {
			for _, gw := range pc.NetworkGateways(name) {
				if gw.Port == 0 || gw.Address == "" {
					t.Fatalf("gateway %+v", gw)
				}
			}
		}
		_ = pc.EndpointNetwork(&registry.Endpoint{Address: "10.1.2.3"})
		if pc.GatewayWeightScale() == 0 {
			t.Fatal("scale 0")
		}
	})
}
