// Package analyze is Mast's `istioctl analyze`: analyzers that look at Istio
// configuration together with the cluster's contents (Services, Pods,
// Deployments, Namespaces) and report Istio's messages -- the same codes,
// levels and wording, following the semantics of Istio's own analyzers.
package analyze

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/mast-mesh/mast/internal/config"
)

// Analyzer is one check over the whole input.
type Analyzer struct {
	Name string
	Run  func(c *context)
}

// Analyzers returns every analyzer, in a fixed order.
func Analyzers() []Analyzer {
	return []Analyzer{
		{"schema.ValidationAnalyzer", analyzeSchema},
		{"annotations.K8sAnalyzer", analyzeAnnotations},
		{"deployment.ApplicationUIDAnalyzer", analyzeApplicationUID},
		{"injection.Analyzer", analyzeInjection},
		{"injection.ImageAnalyzer", analyzeProxyImages},
		{"injection.ImageAutoAnalyzer", analyzeImageAuto},
		{"authz.AuthorizationPoliciesAnalyzer", analyzeAuthorizationPolicies},
		{"authz.TCPPortAnalyzer", analyzeAuthzTCP},
		{"deployment.ServiceAssociationAnalyzer", analyzeDeploymentServices},
		{"destinationrule.CaCertificateAnalyzer", analyzeCACertificates},
		{"destinationrule.PodNotSelectedAnalyzer", analyzeSubsetPods},
		{"deprecation.FieldAnalyzer", analyzeDeprecatedFields},
		{"envoyfilter.EnvoyPatchAnalyzer", analyzeEnvoyFilters},
		{"envoyfilter.EffectAnalyzer", analyzeEnvoyFilterEffect},
		{"gateway.IngressGatewayPortAnalyzer", analyzeGatewayPorts},
		{"gateway.ConflictingGatewayAnalyzer", analyzeConflictingGateways},
		{"gateway.CertificateAnalyzer", analyzeGatewayCertificates},
		{"gateway.SecretAnalyzer", analyzeGatewaySecrets},
		{"service.PortNameAnalyzer", analyzePortNames},
		{"serviceentry.ProtocolAddressesAnalyzer", analyzeSEAddresses},
		{"serviceentry.ConflictingServiceEntryProtocolAnalyzer", analyzeSEProtocols},
		{"registry.HostConflictAnalyzer", analyzeRegistryHosts},
		{"sidecar.SelectorAnalyzer", analyzeSidecarSelectors},
		{"telemetry.SelectorAnalyzer", analyzeTelemetrySelectors},
		{"telemetry.DefaultSelectorAnalyzer", analyzeTelemetryDefaultSelectors},
		{"telemetry.ProviderAnalyzer", analyzeTelemetryProviders},
		{"telemetry.LightstepAnalyzer", analyzeLightstep},
		{"virtualservice.ConflictingMeshGatewayHostsAnalyzer", analyzeConflictingMeshHosts},
		{"virtualservice.DelegateAnalyzer", analyzeDelegates},
		{"virtualservice.DestinationHostAnalyzer", analyzeDestinationHosts},
		{"virtualservice.DestinationRuleAnalyzer", analyzeDestinationSubsets},
		{"virtualservice.GatewayAnalyzer", analyzeVSGateways},
		{"virtualservice.JWTClaimRouteAnalyzer", analyzeJWTClaimRoutes},
	}
}

// context is what one analysis run shares between analyzers.
type context struct {
	in       *Input
	msgs     []Message
	analyzer string // the analyzer running
}

func (c *context) report(m Message) {
	m.analyzers = []string{c.analyzer}
	c.msgs = append(c.msgs, m)
}

// Analyze runs every analyzer over in and returns the messages sorted by
// resource, then code, then text.
func Analyze(in *Input) []Message {
	c := &context{in: in}
	for _, a := range Analyzers() {
		c.analyzer = a.Name
		a.Run(c)
	}
	// One finding reported twice (by two analyzers, or by one at several
	// places of a resource) is one message, at its first place, as with Istio.
	type id struct {
		code, resource, text string
	}
	seen := map[id]int{}
	msgs := c.msgs[:0]
	for _, m := range c.msgs {
		k := id{m.Type.Code, m.Resource.FriendlyName(), m.Text}
		if i, ok := seen[k]; ok {
			msgs[i].analyzers = append(msgs[i].analyzers, m.analyzers...)
			continue
		}
		seen[k] = len(msgs)
		msgs = append(msgs, m)
	}
	c.msgs = msgs
	sort.SliceStable(c.msgs, func(i, j int) bool {
		a, b := c.msgs[i], c.msgs[j]
		if x, y := a.Resource.FriendlyName(), b.Resource.FriendlyName(); x != y {
			return x < y
		}
		if a.Type.Code != b.Type.Code {
			return a.Type.Code < b.Type.Code
		}
		return a.Text < b.Text
	})
	return c.msgs
}

// refOf returns the message reference of an Istio resource.
func refOf(r config.Resource) Ref {
	return Ref{Kind: r.Kind.Kind, Namespace: r.Namespace, Name: r.Name, File: r.Source.File, Line: r.Source.Line}
}

// selector is a Kubernetes equality label selector (klabels.SelectorFromSet).
type selector map[string]string

// matches reports whether every label of s is set to its value; an empty selector matches everything.
func (s selector) matches(labels map[string]string) bool {
	for k, v := range s {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// String is the selector as Kubernetes prints it: "k1=v1,k2=v2", sorted.
func (s selector) String() string {
	parts := make([]string, 0, len(s))
	for _, k := range sortedKeys(s) {
		parts = append(parts, k+"="+s[k])
	}
	return strings.Join(parts, ",")
}

const clusterDomain = "svc.cluster.local"

// fqdn is Istio's ConvertHostToFQDN: a short name becomes name.ns.svc.cluster.local.
func fqdn(ns, host string) string {
	if !strings.HasPrefix(host, "*") && !strings.Contains(host, ".") {
		return host + "." + ns + "." + clusterDomain
	}
	return host
}

// nameFromHost is Istio's GetResourceNameFromHost: namespace and name of a
// Kubernetes service host, or (defaultNS, host) for anything else.
func nameFromHost(defaultNS, host string) (ns, name string) {
	if rest, ok := strings.CutSuffix(host, "."+clusterDomain); ok {
		if i := strings.LastIndexByte(rest, '.'); i > 0 && i < len(rest)-1 {
			return rest[i+1:], rest[:i]
		}
	}
	return defaultNS, host
}

// hostMatches is Istio's host.Name.Matches: wildcards match by suffix, either way round.
func hostMatches(n, o string) bool {
	nw, ow := strings.HasPrefix(n, "*"), strings.HasPrefix(o, "*")
	switch {
	case nw && ow:
		if len(n) < len(o) {
			return strings.HasSuffix(o[1:], n[1:])
		}
		return strings.HasSuffix(n[1:], o[1:])
	case nw:
		return strings.HasSuffix(o, n[1:])
	case ow:
		return strings.HasSuffix(n, o[1:])
	}
	return n == o
}

// exportToAll is Istio's IsExportToAllNamespaces.
func exportToAll(exportTo []string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		if e == "*" {
			return true
		}
	}
	return false
}

// shortOrFullName is Istio's resource.NewShortOrFullName: "ns/name" or a name in ns.
func shortOrFullName(ns, name string) (string, string) {
	if gns, n, ok := strings.Cut(name, "/"); ok {
		return gns, n
	}
	return ns, name
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
