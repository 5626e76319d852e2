package generate

import (
	"maps"
	"sort"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
)

// MixerFilterName is Istio 1.4's name of the Mixer client filter; its
// typed_config is istio.mixer.v1.config.client.HttpClientConfig, whose
// transport check_cluster and report_cluster Mast sets to the host:port
// of the Mixer (mast-proxy dials it over mTLS with its mesh identity).
const MixerFilterName = "mixer"

// mixerActive tells whether this proxy gets the Mixer client filter: the
// configuration has Mixer rules and MeshConfig names a Mixer. On a
// sidecar's inbound chains the filter checks and reports for the
// workload's services (the destination side, as Istio 1.4's sidecars did);
// on outbound chains and gateways it only forwards the proxy's own
// attributes (source.*) to the destination in x-istio-attributes.
func (g *gen) mixerActive() bool {
	return g.pc.Mesh.MixerCheckServer != "" && !g.p.IsGRPC() && len(g.pc.Config.List(config.MixerRule)) > 0
}

// insertMixer puts f after the security filters (jwt_authn, rbac) and
// before fault, cors and the router.
func insertMixer(m *hcmv3.HttpConnectionManager, f *hcmv3.HttpFilter) {
	at := len(m.HttpFilters) - 1
	for i, h := range m.HttpFilters {
		if h.GetName() == faultFilterName || h.GetName() == corsFilterName || h.GetName() == routerFilterName {
			at = i
			break
		}
	}
	m.HttpFilters = insertHTTPFilters(m.HttpFilters, max(at, 0), []*hcmv3.HttpFilter{f})
}

func strAttr(s string) *mixerpb.Attributes_AttributeValue {
	return &mixerpb.Attributes_AttributeValue{Value: &mixerpb.Attributes_AttributeValue_StringValue{StringValue: s}}
}

func mapAttr(m map[string]string) *mixerpb.Attributes_AttributeValue {
	return &mixerpb.Attributes_AttributeValue{Value: &mixerpb.Attributes_AttributeValue_StringMapValue{
		StringMapValue: &mixerpb.Attributes_StringMap{Entries: m}}}
}

// workloadAttrs are the proxy's own workload attributes under prefix
// (source or destination).
func (g *gen) workloadAttrs(prefix string) map[string]*mixerpb.Attributes_AttributeValue {
	p := g.p
	a := map[string]*mixerpb.Attributes_AttributeValue{}
	if p.Name != "" {
		a[prefix+".name"] = strAttr(p.Name)
		a[prefix+".uid"] = strAttr("kubernetes://" + p.Name + "." + p.Namespace)
	}
	if p.Namespace != "" {
		a[prefix+".namespace"] = strAttr(p.Namespace)
		a[prefix+".workload.namespace"] = strAttr(p.Namespace)
	}
	wl := p.Metadata["WORKLOAD_NAME"]
	if wl == "" {
		wl = p.Name
	}
	if wl != "" {
		a[prefix+".workload.name"] = strAttr(wl)
	}
	if len(p.Labels) > 0 {
		a[prefix+".labels"] = mapAttr(p.Labels)
	}
	return a
}

func (g *gen) transport() *clientpb.TransportConfig {
	policy := clientpb.NetworkFailPolicy_FAIL_CLOSE
	if g.pc.Mesh.PolicyCheckFailOpen {
		policy = clientpb.NetworkFailPolicy_FAIL_OPEN
	}
	report := g.pc.Mesh.MixerReportServer
	if report == "" {
		report = g.pc.Mesh.MixerCheckServer
	}
	return &clientpb.TransportConfig{
		CheckCluster:      g.pc.Mesh.MixerCheckServer,
		ReportCluster:     report,
		NetworkFailPolicy: &clientpb.NetworkFailPolicy{Policy: policy},
		// Exact quotas unless prefetch was asked for (Istio prefetched).
		DisableQuotaCache:     !g.pc.Mesh.MixerQuotaPrefetch,
		ReportBatchMaxEntries: 100,
		ReportBatchMaxTime:    durationpb.New(1e9),
	}
}

// mixerForward is the outbound (and gateway) filter: no checks, the
// proxy's source attributes forwarded.
func (g *gen) mixerForward() *clientpb.HttpClientConfig {
	return &clientpb.HttpClientConfig{
		Transport:                 g.transport(),
		ForwardAttributes:         &mixerpb.Attributes{Attributes: g.workloadAttrs("source")},
		MixerAttributes:           &mixerpb.Attributes{Attributes: map[string]*mixerpb.Attributes_AttributeValue{"context.reporter.kind": strAttr("outbound")}},
		ServiceConfigs:            map[string]*clientpb.ServiceConfig{"*": {DisableCheckCalls: true, DisableReportCalls: true}},
		DefaultDestinationService: "*",
	}
}

// mixerInbound is the sidecar inbound filter: check (and quota) and report
// for the workload's services.
func (g *gen) mixerInbound() *clientpb.HttpClientConfig {
	static := g.workloadAttrs("destination")
	static["context.reporter.kind"] = strAttr("inbound")
	if p := strings.TrimPrefix(g.p.ServiceAccount, "spiffe://"); strings.Contains(p, "/sa/") {
		static["destination.principal"] = strAttr(p)
	}
	cfg := &clientpb.HttpClientConfig{Transport: g.transport(), MixerAttributes: &mixerpb.Attributes{Attributes: static},
		ServiceConfigs: map[string]*clientpb.ServiceConfig{}}
	hosts := map[string]bool{}
	for _, ip := range g.p.IPAddresses {
		for _, ep := range g.pc.EndpointsAt(ip) {
			hosts[ep.Hostname] = true
		}
	}
	var names []string
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		svc := g.pc.Service(h)
		if svc == nil {
			continue
		}
		short, _, _ := strings.Cut(h, ".")
		sc := &clientpb.ServiceConfig{
			DisableCheckCalls: g.pc.Mesh.DisablePolicyChecks,
			MixerAttributes: &mixerpb.Attributes{Attributes: map[string]*mixerpb.Attributes_AttributeValue{
				"destination.service.host":      strAttr(h),
				"destination.service.name":      strAttr(short),
				"destination.service.namespace": strAttr(svc.Namespace),
				"destination.service.uid":       strAttr("istio://" + svc.Namespace + "/services/" + short),
			}},
			QuotaSpec: g.quotaSpecsFor(short, svc.Namespace),
		}
		cfg.ServiceConfigs[h] = sc
		if cfg.DefaultDestinationService == "" {
			cfg.DefaultDestinationService = h
		}
	}
	if cfg.DefaultDestinationService == "" {
		// A workload no service selects is still checked.
		cfg.ServiceConfigs["*"] = &clientpb.ServiceConfig{DisableCheckCalls: g.pc.Mesh.DisablePolicyChecks}
		cfg.DefaultDestinationService = "*"
	}
	return cfg
}

// mixerInboundTCP is the sidecar inbound Mixer network filter, from the
// HTTP one: the same Mixer, fail policy and attributes (those of the
// workload's first service, as the HTTP filter's default), checking and
// reporting every connection (Istio 1.4's TcpClientConfig). QuotaSpecs
// bind to requests: none is charged per connection.
func mixerInboundTCP(in *clientpb.HttpClientConfig) *clientpb.TcpClientConfig {
	attrs := maps.Clone(in.GetMixerAttributes().GetAttributes())
	sc := in.GetServiceConfigs()[in.GetDefaultDestinationService()]
	maps.Copy(attrs, sc.GetMixerAttributes().GetAttributes())
	return &clientpb.TcpClientConfig{Transport: in.GetTransport(), MixerAttributes: &mixerpb.Attributes{Attributes: attrs},
		DisableCheckCalls: sc.GetDisableCheckCalls()}
}

// quotaSpecsFor returns the QuotaSpecs QuotaSpecBindings bind to a
// service (by name and namespace; a binding's service without namespace,
// or service '*', matches any).
func (g *gen) quotaSpecsFor(name, ns string) []*clientpb.QuotaSpec {
	var out []*clientpb.QuotaSpec
	seen := map[config.Key]bool{}
	for _, r := range g.pc.Config.List(config.QuotaSpecBinding) {
		b := r.Spec.(*clientpb.QuotaSpecBinding)
		bound := false
		for _, s := range b.GetServices() {
			if s.GetService() == "*" || (s.GetName() == name && (s.GetNamespace() == "" || s.GetNamespace() == ns)) {
				bound = true
			}
		}
		if !bound {
			continue
		}
		for _, ref := range b.GetQuotaSpecs() {
			qns := ref.GetNamespace()
			if qns == "" {
				qns = r.Namespace
			}
			k := config.Key{Kind: config.QuotaSpec, Namespace: qns, Name: ref.GetName()}
			if seen[k] {
				continue
			}
			seen[k] = true
			if qs, ok := g.pc.Config.Get(k); ok {
				out = append(out, qs.Spec.(*clientpb.QuotaSpec))
			}
		}
	}
	return out
}
