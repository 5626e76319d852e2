package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/localmesh"
)

// Describe runs `mast describe pod|service NAME`.
func Describe(args []string, stdout, stderr io.Writer) int {
	c := newCommand("describe", "pod|service NAME [flags]",
		"Describes what the mesh's configuration does to a workload (pod: a WorkloadEntry or proxy name of the\n"+
			"local mesh) or a service (a ServiceEntry host or its short name): its services and ports, the\n"+
			"DestinationRule (matching and non-matching subsets, TLS mode, policies), the VirtualServices routing to\n"+
			"it, the effective and applied PeerAuthentications (mTLS mode), the AuthorizationPolicies and\n"+
			"RequestAuthentications that select it, and `mast analyze`'s warnings about any of them.",
		"mast describe pod ratings-v1",
		"mast describe service reviews")
	var m meshFlags
	m.register(c, false)
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if len(c.args) != 2 || (c.args[0] != "pod" && c.args[0] != "po" && c.args[0] != "service" && c.args[0] != "svc") {
		return c.usageError(stderr, "want `pod NAME` or `service NAME`")
	}
	st, err := localmesh.ReadRunState(m.stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "mast describe: %v\n", err)
		return ExitFailure
	}
	rs, _ := config.LoadPaths(st.ConfigDir)
	d := &describer{snap: config.NewSnapshot(rs), w: stdout}
	d.loadFindings(m.stateDir)
	name := c.args[1]
	if c.args[0] == "pod" || c.args[0] == "po" {
		we, ok := d.workload(name)
		if !ok {
			fmt.Fprintf(stderr, "mast describe: no workload %q in the local mesh's configuration (WorkloadEntries: %s)\n", name, strings.Join(d.names(config.WorkloadEntry), ", "))
			return ExitFailure
		}
		d.pod(we)
		return ExitOK
	}
	se, ok := d.service(name)
	if !ok {
		fmt.Fprintf(stderr, "mast describe: no service %q in the local mesh's configuration (ServiceEntries: %s)\n", name, strings.Join(d.names(config.ServiceEntry), ", "))
		return ExitFailure
	}
	d.describeService(se, nil)
	return ExitOK
}

type describer struct {
	snap     *config.Snapshot
	w        io.Writer
	findings []struct {
		Code, Level, Message string
		Resource             struct{ Kind, Namespace, Name string }
	}
	shown map[string]bool // resources whose findings are printed
	// plainDRs are the DestinationRules seen that make clients send
	// without mutual TLS (DISABLE, SIMPLE), with their mode.
	plainDRs []string
}

// loadFindings runs `mast analyze` over the mesh's configuration.
func (d *describer) loadFindings(stateDir string) {
	var out bytes.Buffer
	Analyze([]string{"--state-dir", stateDir, "-o", "json"}, &out, io.Discard)
	json.Unmarshal(out.Bytes(), &d.findings)
	d.shown = map[string]bool{}
}

func (d *describer) names(k config.Kind) []string {
	var out []string
	for _, r := range d.snap.List(k) {
		out = append(out, r.Name)
	}
	return out
}

func (d *describer) workload(name string) (config.Resource, bool) {
	name = strings.TrimSuffix(name, "-sidecar")
	for _, r := range d.snap.List(config.WorkloadEntry) {
		if r.Name == name || r.Name+"."+r.Namespace == name {
			return r, true
		}
	}
	return config.Resource{}, false
}

func (d *describer) service(name string) (config.Resource, bool) {
	for _, r := range d.snap.List(config.ServiceEntry) {
		for _, h := range r.Spec.(*networking.ServiceEntry).GetHosts() {
			if h == name || r.Name == name || strings.HasPrefix(h, name+".") {
				return r, true
			}
		}
	}
	return config.Resource{}, false
}

func (d *describer) printf(format string, args ...any) { fmt.Fprintf(d.w, format, args...) }

// warnings prints the analysis messages about a resource, once.
func (d *describer) warnings(kind, ns, name string) {
	key := kind + "/" + ns + "/" + name
	if d.shown[key] {
		return
	}
	d.shown[key] = true
	for _, f := range d.findings {
		if f.Resource.Kind == kind && f.Resource.Name == name && (f.Resource.Namespace == ns || f.Resource.Namespace == "") {
			d.printf("   WARNING: [%s] (%s) %s\n", f.Code, f.Level, f.Message)
		}
	}
}

func (d *describer) pod(we config.Resource) {
	spec := we.Spec.(*networking.WorkloadEntry)
	wl := workload{namespace: we.Namespace, labels: spec.GetLabels()}
	d.printf("Pod: %s\n", we.Name)
	d.printf("   Address: %s\n", spec.GetAddress())
	d.printf("   Labels: %s\n", labelString(spec.GetLabels()))
	if spec.GetServiceAccount() != "" {
		d.printf("   Service account: %s\n", spec.GetServiceAccount())
	}
	d.warnings("WorkloadEntry", we.Namespace, we.Name)
	found := false
	for _, r := range d.snap.List(config.ServiceEntry) {
		se := r.Spec.(*networking.ServiceEntry)
		if r.Namespace == we.Namespace && se.GetWorkloadSelector() != nil && selects(se.GetWorkloadSelector().GetLabels(), spec.GetLabels()) {
			d.printf("--------------------\n")
			d.describeService(r, spec.GetLabels())
			found = true
		}
	}
	if !found {
		d.printf("   WARNING: no ServiceEntry selects this workload: no service sends it traffic\n")
	}
	d.printf("--------------------\n")
	d.peerAuthentication(wl)
	d.policies(wl)
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func labelString(l map[string]string) string {
	var out []string
	for k, v := range l {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// describeService prints a service, its DestinationRule and VirtualServices;
// podLabels (when describing a pod) say which subsets match it.
func (d *describer) describeService(r config.Resource, podLabels map[string]string) {
	se := r.Spec.(*networking.ServiceEntry)
	host := se.GetHosts()[0]
	d.printf("Service: %s\n", r.Name)
	d.printf("   Hosts: %s\n", strings.Join(se.GetHosts(), ", "))
	for _, p := range se.GetPorts() {
		d.printf("   Port: %s %d/%s\n", p.GetName(), p.GetNumber(), p.GetProtocol())
	}
	d.warnings("ServiceEntry", r.Namespace, r.Name)
	for _, dr := range d.snap.List(config.DestinationRule) {
		spec := dr.Spec.(*networking.DestinationRule)
		if fqdnOf(dr.Namespace, spec.GetHost()) != host && spec.GetHost() != host {
			continue
		}
		d.printf("DestinationRule: %s.%s for %q\n", dr.Name, dr.Namespace, spec.GetHost())
		var match, other []string
		for _, ss := range spec.GetSubsets() {
			if podLabels == nil || selects(ss.GetLabels(), podLabels) {
				match = append(match, ss.GetName())
			} else {
				other = append(other, ss.GetName())
			}
		}
		if podLabels != nil {
			d.printf("   Matching subsets: %s\n", strings.Join(match, ","))
			if len(other) > 0 {
				d.printf("      (Non-matching subsets %s)\n", strings.Join(other, ","))
			}
		} else if len(match) > 0 {
			d.printf("   Subsets: %s\n", strings.Join(match, ","))
		}
		tp := spec.GetTrafficPolicy()
		mode := "ISTIO_MUTUAL (automatic)"
		if tp.GetTls() != nil {
			mode = tp.GetTls().GetMode().String()
		}
		d.printf("   Traffic Policy TLS Mode: %s\n", mode)
		if m := tp.GetTls().GetMode(); m == networking.ClientTLSSettings_DISABLE || m == networking.ClientTLSSettings_SIMPLE {
			d.plainDRs = append(d.plainDRs, fmt.Sprintf("%s.%s (%s)", dr.Name, dr.Namespace, m))
		}
		var pols []string
		if tp.GetConnectionPool() != nil {
			pols = append(pols, "connectionPool")
		}
		if tp.GetOutlierDetection() != nil {
			pols = append(pols, "outlierDetection")
		}
		if tp.GetLoadBalancer() != nil {
			pols = append(pols, "loadBalancer")
		}
		if tp.GetTls() != nil {
			pols = append(pols, "TLS")
		}
		if len(pols) > 0 {
			d.printf("   Policies: %s\n", strings.Join(pols, " "))
		}
		d.warnings("DestinationRule", dr.Namespace, dr.Name)
	}
	vsFound := false
	merged := mergeVS(d.snap) // delegation merged as mastd merges it
	for _, vr := range merged.list {
		vs := vr.Spec.(*networking.VirtualService)
		routes, to := 0, false
		for _, h := range vs.GetHttp() {
			routes++
			for _, dst := range h.GetRoute() {
				to = to || fqdnOf(vr.Namespace, dst.GetDestination().GetHost()) == host
			}
		}
		for _, h := range vs.GetHosts() {
			to = to || fqdnOf(vr.Namespace, h) == host
		}
		if !to {
			continue
		}
		vsFound = true
		gw := ""
		if len(vs.GetGateways()) > 0 {
			gw = " (gateways " + strings.Join(vs.GetGateways(), ", ") + ")"
		}
		d.printf("VirtualService: %s.%s%s\n", vr.Name, vr.Namespace, gw)
		d.printf("   %d HTTP route(s)", routes)
		if n := len(vs.GetTcp()); n > 0 {
			d.printf(", %d TCP route(s)", n)
		}
		d.printf("\n")
		if ds := merged.delegates(vr); len(ds) > 0 {
			d.printf("   Delegates merged: %s\n", strings.Join(ds, ", "))
		}
		d.warnings("VirtualService", vr.Namespace, vr.Name)
	}
	if !vsFound {
		d.printf("VirtualService: none (traffic is spread over every endpoint of the service)\n")
	}
}

// peerAuthentication prints the effective mTLS mode: the workload's own
// PeerAuthentication, else its namespace's, else the root namespace's.
func (d *describer) peerAuthentication(wl workload) {
	var applied []string
	mode, from := "PERMISSIVE", "Istio's default"
	rank := 0
	for _, r := range d.snap.List(config.PeerAuthentication) {
		pa := r.Spec.(*security.PeerAuthentication)
		sel := pa.GetSelector().GetMatchLabels()
		var rk int
		switch {
		case r.Namespace == wl.namespace && len(sel) > 0 && selects(sel, wl.labels):
			rk = 3
		case r.Namespace == wl.namespace && len(sel) == 0:
			rk = 2
		case r.Namespace == rootNamespace && len(sel) == 0:
			rk = 1
		default:
			continue
		}
		applied = append(applied, r.Name+"."+r.Namespace)
		if m := pa.GetMtls().GetMode(); rk > rank && m != security.PeerAuthentication_MutualTLS_UNSET {
			rank, mode, from = rk, m.String(), "PeerAuthentication "+r.Name+"."+r.Namespace
		}
	}
	d.printf("Effective PeerAuthentication:\n   Workload mTLS mode: %s (%s)\n", mode, from)
	if mode == "STRICT" && len(d.plainDRs) > 0 {
		d.printf("   WARNING: the workload requires mutual TLS, but DestinationRule %s makes its clients send without it: their requests fail (503 UC)\n",
			strings.Join(d.plainDRs, ", "))
	}
	if len(applied) > 0 {
		d.printf("Applied PeerAuthentication:\n   %s\n", strings.Join(applied, ", "))
	}
}

// policies prints the AuthorizationPolicies and RequestAuthentications that select the workload.
func (d *describer) policies(wl workload) {
	var authz, authn []string
	var selected []config.Resource
	for _, r := range d.snap.List(config.AuthorizationPolicy) {
		ap := r.Spec.(*security.AuthorizationPolicy)
		if wl.selectedBy(r.Namespace, ap.GetSelector().GetMatchLabels()) {
			authz = append(authz, fmt.Sprintf("%s.%s (%s, %d rules)", r.Name, r.Namespace, ap.GetAction(), len(ap.GetRules())))
			selected = append(selected, r)
		}
	}
	for _, r := range d.snap.List(config.RequestAuthentication) {
		ra := r.Spec.(*security.RequestAuthentication)
		if wl.selectedBy(r.Namespace, ra.GetSelector().GetMatchLabels()) {
			authn = append(authn, fmt.Sprintf("%s.%s (issuers %s)", r.Name, r.Namespace, issuers(ra)))
		}
	}
	if len(authz) == 0 {
		d.printf("RBAC policies: none (every request is allowed)\n")
	} else {
		d.printf("RBAC policies: %s\n", strings.Join(authz, ", "))
		for _, r := range selected {
			d.warnings("AuthorizationPolicy", r.Namespace, r.Name)
		}
	}
	if len(authn) > 0 {
		d.printf("RequestAuthentication: %s\n", strings.Join(authn, ", "))
	}
}
