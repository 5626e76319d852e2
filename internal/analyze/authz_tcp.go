package analyze

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
)

// Mast's own AuthorizationPolicy messages: what istiod's builder does with a
// policy on a workload's TCP ports, and with several CUSTOM providers on one
// workload, which istioctl analyze does not say.
var (
	// AuthorizationPolicyHTTPOnlyFieldsOnTCPPort: on a TCP filter chain
	// istiod drops an ALLOW rule that has an HTTP-only field (it allows
	// nothing there) and ignores the field in DENY, AUDIT and CUSTOM rules
	// (they match more connections).
	AuthorizationPolicyHTTPOnlyFieldsOnTCPPort = MessageType{"MST0002", "AuthorizationPolicyHTTPOnlyFieldsOnTCPPort", Warning,
		"Rule %d uses HTTP-only fields (%s) and applies to TCP port %d (%s): %s."}
	// ConflictingCustomProviders: istiod (without
	// PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS) and mastd accept one
	// CUSTOM provider per workload, and deny what every CUSTOM policy
	// selects when there are several.
	ConflictingCustomProviders = MessageType{"MST0003", "ConflictingCustomProviders", Error,
		"The CUSTOM AuthorizationPolicies %s select workload %s with different providers (%s); one provider per workload is supported, so the requests and connections these policies select on it are denied."}
	// CustomHTTPProviderOnTCPPort: Envoy checks connections over gRPC only.
	CustomHTTPProviderOnTCPPort = MessageType{"MST0004", "CustomHTTPProviderOnTCPPort", Warning,
		"The CUSTOM provider %q is an HTTP provider and the policy applies to TCP port %d (%s): connections cannot be checked over HTTP; istiod leaves them unchecked, Mast denies the connections the rules select."}
)

// tcpPort is a port a workload receives non-HTTP (TCP filter chain)
// traffic on, and the service port that says so.
type tcpPort struct {
	port uint32
	via  string
}

// tcpProtocols are the protocols whose inbound traffic a sidecar handles
// on a TCP filter chain (network RBAC).
var tcpProtocols = []string{"TCP", "TLS", "HTTPS", "MONGO", "MYSQL", "REDIS"}

// workloadTCPPorts lists the TCP ports of the Services and ServiceEntries
// (workloadSelector) that select the pod. Ports whose protocol is detected
// at run time are left out (they may be HTTP).
func (c *context) workloadTCPPorts(p *Pod) []tcpPort {
	var out []tcpPort
	add := func(port uint32, via string) {
		for _, o := range out {
			if o.port == port {
				return
			}
		}
		out = append(out, tcpPort{port, via})
	}
	for _, s := range c.in.Services {
		if s.Namespace != p.Namespace || len(s.Selector) == 0 || !selector(s.Selector).matches(p.Labels) {
			continue
		}
		for _, sp := range s.Ports {
			if !slices.Contains(tcpProtocols, portProtocol(sp)) {
				continue
			}
			port := uint32(sp.Port)
			if n, err := strconv.ParseUint(sp.TargetPort, 10, 16); err == nil && n > 0 {
				port = uint32(n)
			}
			add(port, fmt.Sprintf("Service %s/%s port %s", s.Namespace, s.Name, sp.Name))
		}
	}
	for _, r := range c.in.Config.List(config.ServiceEntry) {
		se := r.Spec.(*networking.ServiceEntry)
		if r.Namespace != p.Namespace || len(se.GetWorkloadSelector().GetLabels()) == 0 ||
			!selector(se.GetWorkloadSelector().GetLabels()).matches(p.Labels) {
			continue
		}
		for _, sp := range se.GetPorts() {
			if !slices.Contains(tcpProtocols, strings.ToUpper(sp.GetProtocol())) {
				continue
			}
			port := sp.GetNumber()
			if sp.GetTargetPort() != 0 {
				port = sp.GetTargetPort()
			}
			add(port, fmt.Sprintf("ServiceEntry %s/%s port %s", r.Namespace, r.Name, sp.GetName()))
		}
	}
	return out
}

// policyPods are the in-mesh workloads an AuthorizationPolicy's selector
// applies to (gateway targetRefs are left out: gateways' TCP servers are
// not read here).
func (c *context) policyPods(r config.Resource, ap *security.AuthorizationPolicy) []*Pod {
	if ap.GetTargetRef() != nil || len(ap.GetTargetRefs()) > 0 {
		return nil
	}
	root := c.in.Mesh.GetRootNamespace()
	sel := selector(ap.GetSelector().GetMatchLabels())
	var out []*Pod
	for _, p := range c.in.Pods {
		if r.Namespace != root && p.Namespace != r.Namespace {
			continue
		}
		if !c.inMesh(p.Annotations, p.Labels, p.Namespace, append(append([]Container(nil), p.Containers...), p.InitContainers...)) {
			continue
		}
		if sel.matches(p.Labels) {
			out = append(out, p)
		}
	}
	return out
}

// httpOnlyFields names the fields of a rule that have no meaning on TCP
// (istiod's generators that refuse forTCP).
func httpOnlyFields(rule *security.Rule) []string {
	var out []string
	add := func(name string, n int) {
		if n > 0 && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, f := range rule.GetFrom() {
		s := f.GetSource()
		add("requestPrincipals", len(s.GetRequestPrincipals()))
		add("notRequestPrincipals", len(s.GetNotRequestPrincipals()))
	}
	for _, t := range rule.GetTo() {
		o := t.GetOperation()
		add("hosts", len(o.GetHosts()))
		add("notHosts", len(o.GetNotHosts()))
		add("methods", len(o.GetMethods()))
		add("notMethods", len(o.GetNotMethods()))
		add("paths", len(o.GetPaths()))
		add("notPaths", len(o.GetNotPaths()))
	}
	for _, w := range rule.GetWhen() {
		if k := w.GetKey(); strings.HasPrefix(k, "request.headers[") || strings.HasPrefix(k, "request.auth.") ||
			strings.HasPrefix(k, "request.experimental.auth.") {
			add("when "+k, 1)
		}
	}
	return out
}

// ruleOnPort reports whether a rule can match connections to port: some
// `to` operation's ports and notPorts admit it (a rule without `to`, or an
// operation without ports, applies to every port).
func ruleOnPort(rule *security.Rule, port uint32) bool {
	if len(rule.GetTo()) == 0 {
		return true
	}
	p := strconv.FormatUint(uint64(port), 10)
	for _, t := range rule.GetTo() {
		o := t.GetOperation()
		if (len(o.GetPorts()) == 0 || slices.Contains(o.GetPorts(), p)) && !slices.Contains(o.GetNotPorts(), p) {
			return true
		}
	}
	return false
}

// analyzeAuthzTCP reports, for AuthorizationPolicies that apply to
// workloads with TCP ports: rules whose HTTP-only fields change meaning on
// those ports (MST0002), CUSTOM policies of an HTTP provider there (MST0004),
// and workloads that CUSTOM policies of different providers select (MST0003).
func analyzeAuthzTCP(c *context) {
	type customSel struct {
		policy, provider string
		ref              Ref
	}
	custom := map[*Pod][]customSel{}
	for _, r := range c.in.Config.List(config.AuthorizationPolicy) {
		ap := r.Spec.(*security.AuthorizationPolicy)
		pods := c.policyPods(r, ap)
		dryRun := r.Annotations["istio.io/dry-run"] == "true"
		if ap.GetAction() == security.AuthorizationPolicy_CUSTOM && !dryRun {
			for _, p := range pods {
				custom[p] = append(custom[p], customSel{r.Namespace + "/" + r.Name, ap.GetProvider().GetName(), refOf(r)})
			}
		}
		var ports []tcpPort
		for _, p := range pods {
			for _, tp := range c.workloadTCPPorts(p) {
				if !slices.ContainsFunc(ports, func(o tcpPort) bool { return o.port == tp.port }) {
					ports = append(ports, tp)
				}
			}
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i].port < ports[j].port })
		if len(ports) == 0 {
			continue
		}
		if ap.GetAction() == security.AuthorizationPolicy_CUSTOM && c.httpProvider(ap.GetProvider().GetName()) {
			for _, tp := range ports {
				if slices.ContainsFunc(ap.GetRules(), func(rule *security.Rule) bool { return ruleOnPort(rule, tp.port) }) {
					c.report(newMessage(CustomHTTPProviderOnTCPPort, refOf(r), ap.GetProvider().GetName(), tp.port, tp.via))
					break
				}
			}
		}
		for i, rule := range ap.GetRules() {
			fields := httpOnlyFields(rule)
			if len(fields) == 0 {
				continue
			}
			for _, tp := range ports {
				if !ruleOnPort(rule, tp.port) {
					continue
				}
				effect := "Istio ignores these fields on TCP, so this " + ap.GetAction().String() +
					" rule matches every connection to that port its other fields match"
				if ap.GetAction() == security.AuthorizationPolicy_ALLOW {
					effect = "Istio leaves the whole rule out on TCP, so it allows no connection to that port"
				}
				c.report(newMessage(AuthorizationPolicyHTTPOnlyFieldsOnTCPPort, refOf(r), i, strings.Join(fields, ", "), tp.port, tp.via, effect))
			}
		}
	}
	for p, sels := range custom {
		var providers []string
		for _, s := range sels {
			if !slices.Contains(providers, s.provider) {
				providers = append(providers, s.provider)
			}
		}
		if len(providers) < 2 {
			continue
		}
		sort.Strings(providers)
		var names []string
		for _, s := range sels {
			names = append(names, s.policy+" ("+s.provider+")")
		}
		sort.Strings(names)
		for _, s := range sels {
			c.report(newMessage(ConflictingCustomProviders, s.ref, strings.Join(names, ", "), p.Namespace+"/"+p.Name, strings.Join(providers, ", ")))
		}
	}
}

// httpProvider reports whether the mesh's extension provider name is an
// envoyExtAuthzHttp provider.
func (c *context) httpProvider(name string) bool {
	for _, p := range c.in.Mesh.GetExtensionProviders() {
		if p.GetName() == name {
			return p.GetEnvoyExtAuthzHttp() != nil
		}
	}
	return false
}
