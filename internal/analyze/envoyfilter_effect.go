package analyze

import (
	stdcontext "context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/envoypatch"
	"github.com/mast-mesh/mast/internal/pilot/envoyfilter"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/aggregate"
	kuberegistry "github.com/mast-mesh/mast/internal/registry/kube"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

// The EnvoyFilter findings Istio has no code for.
var (
	EnvoyFilterPatchMatchesNothing = MessageType{"MST0005", "EnvoyFilterPatchMatchesNothing", Warning,
		"configPatches[%d] (%s %s) matches nothing in the configuration generated for the workloads this EnvoyFilter selects (%s), so it has no effect."}
	EnvoyFilterPatchFails = MessageType{"MST0006", "EnvoyFilterPatchFails", Error,
		"configPatches[%d] (%s %s) cannot be applied to workload %s: %s"}
)

// analyzeEnvoyFilterEffect generates, as mastd does, the listeners, route
// configurations and clusters of every workload an EnvoyFilter selects and
// applies the EnvoyFilters to them with mastd's own applier
// (internal/pilot/envoyfilter), whose warnings -- a patch that matched
// nothing, a patch that failed -- become messages: MST0005 for a patch that
// matched nothing on any selected workload (or selects none), MST0006 for a
// patch that failed. Workloads are the input's pods (and WorkloadEntries),
// given addresses of their own, gateways those labelled istio:
// ingressgateway or egressgateway; services are the Kubernetes Services and
// ServiceEntries.
func analyzeEnvoyFilterEffect(c *context) {
	efs := c.in.Config.List(config.EnvoyFilter)
	if len(efs) == 0 {
		return
	}
	mesh := model.DefaultMeshConfig()
	if rn := c.in.Mesh.GetRootNamespace(); rn != "" {
		mesh.RootNamespace = rn
	}
	proxies, reg := c.workloadProxies()
	pc := model.NewPushContext("analyze", mesh, c.in.Config, reg)

	rec := &warnings{}
	gen := envoyfilter.New(envoyfilter.Config{Logger: slog.New(rec)}).Wrap(generate.Generate)
	type patchKey struct {
		filter string
		index  int
	}
	workload := map[string]string{}   // proxy ID -> namespace/name
	selected := map[string][]string{} // EnvoyFilter -> workloads it applies to
	inSet := map[patchKey]int{}       // proxies whose patch set holds the patch
	generated := map[string]bool{}    // kind/namespace/labels of the proxies generated
	for _, p := range proxies {
		set, filters := envoyfilter.ForProxy(pc, p)
		if set == nil || set.Len() == 0 {
			continue
		}
		workload[p.ID] = p.Namespace + "/" + p.Name
		for f := range filters {
			selected[f] = append(selected[f], p.Namespace+"/"+p.Name)
		}
		// Workloads of one kind, namespace and labels (a Deployment's pods)
		// get the same configuration: one of them is generated.
		k := string(p.Type) + "/" + p.Namespace + "/" + selector(p.Labels).String()
		if generated[k] {
			continue
		}
		generated[k] = true
		for _, pt := range set.Patches(patchedKinds()...) {
			inSet[patchKey{pt.Filter, pt.Index}]++
		}
		for _, typeURL := range []string{generate.ListenerType, generate.RouteType, generate.ClusterType} {
			if _, err := gen(pc, p, typeURL, nil); err != nil {
				return // cannot generate: nothing to say about EnvoyFilters
			}
		}
	}
	unmatched := map[patchKey]int{}
	for _, w := range rec.list {
		k := patchKey{w.filter, w.index}
		if w.err != "" {
			continue
		}
		unmatched[k]++
	}
	for _, r := range efs {
		name := r.Namespace + "/" + r.Name
		spec := r.Spec.(*networking.EnvoyFilter)
		compiled := map[int]bool{} // patches that fail to compile are validation's to report
		patches, _ := envoypatch.Compile(name, spec)
		for _, pt := range patches {
			compiled[pt.Index] = true
		}
		var ef *EnvoyFilter
		for _, e := range c.in.EnvoyFilters {
			if e.Namespace == r.Namespace && e.Name == r.Name {
				ef = e
			}
		}
		workloads := selected[name]
		sort.Strings(workloads)
		list := strings.Join(workloads, ", ")
		switch {
		case len(workloads) == 0:
			list = "none"
		case len(workloads) > 5:
			list = strings.Join(workloads[:5], ", ") + fmt.Sprintf(" and %d more", len(workloads)-5)
		}
		for i, cp := range spec.GetConfigPatches() {
			if !compiled[i] {
				continue
			}
			ref := refOf(r)
			if ef != nil && i < len(ef.PatchLines) {
				ref.Line = ef.PatchLines[i]
			}
			k := patchKey{name, i}
			applyTo, op := cp.GetApplyTo().String(), cp.GetPatch().GetOperation().String()
			for _, w := range rec.list {
				if w.filter == name && w.index == i && w.err != "" {
					c.report(newMessage(EnvoyFilterPatchFails, ref, i, applyTo, op, workload[w.proxy], w.err))
				}
			}
			if inSet[k] == unmatched[k] {
				c.report(newMessage(EnvoyFilterPatchMatchesNothing, ref, i, applyTo, op, list))
			}
		}
	}
}

// patchedKinds are the applyTo kinds mastd patches (listeners, route
// configurations, clusters).
func patchedKinds() []networking.EnvoyFilter_ApplyTo {
	return []networking.EnvoyFilter_ApplyTo{networking.EnvoyFilter_LISTENER, networking.EnvoyFilter_LISTENER_FILTER,
		networking.EnvoyFilter_FILTER_CHAIN, networking.EnvoyFilter_NETWORK_FILTER, networking.EnvoyFilter_HTTP_FILTER,
		networking.EnvoyFilter_ROUTE_CONFIGURATION, networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE,
		networking.EnvoyFilter_CLUSTER}
}

// warnings is a slog handler keeping the applier's per-patch warnings.
type warnings struct {
	list []patchWarning
}

type patchWarning struct {
	filter, proxy, err string
	index              int
}

func (w *warnings) Enabled(stdcontext.Context, slog.Level) bool { return true }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler          { return w }
func (w *warnings) WithGroup(string) slog.Handler               { return w }

func (w *warnings) Handle(_ stdcontext.Context, r slog.Record) error {
	pw := patchWarning{index: -1}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "envoyfilter":
			pw.filter = a.Value.String()
		case "patch":
			pw.index = int(a.Value.Int64())
		case "proxy":
			pw.proxy = a.Value.String()
		case "err":
			pw.err = a.Value.String()
		}
		return true
	})
	if pw.filter != "" && pw.index >= 0 && r.Level >= slog.LevelWarn {
		w.list = append(w.list, pw)
	}
	return nil
}

// workloadProxies returns a proxy for each pod and WorkloadEntry of the
// input, at an address of its own, and the registry mastd would build: the
// Kubernetes Services with the pods they select as endpoints, and the
// ServiceEntries (which own a hostname they share, as in mastd).
func (c *context) workloadProxies() ([]*model.Proxy, *registry.Snapshot) {
	var proxies []*model.Proxy
	var kin kuberegistry.Input
	ips := map[*Pod]string{}
	for i, p := range c.in.Pods {
		ip := fmt.Sprintf("10.%d.%d.%d", 128+i>>16&63, i>>8&255, i&255)
		ips[p] = ip
		typ, name := model.SidecarProxy, p.Name
		if p.Labels["istio"] == "ingressgateway" || p.Labels["istio"] == "egressgateway" {
			typ = model.Router
		}
		proxies = append(proxies, &model.Proxy{ID: string(typ) + "~" + ip + "~" + name + "." + p.Namespace + "~" + p.Namespace + ".svc.cluster.local",
			Type: typ, IPAddresses: []string{ip}, Name: name, Namespace: p.Namespace, DNSDomain: p.Namespace + ".svc.cluster.local",
			Labels: p.Labels, Metadata: map[string]string{}})
		if p.Kind == "Pod" {
			kin.Pods = append(kin.Pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
				Status: corev1.PodStatus{PodIP: ip}})
		}
	}
	for i, s := range c.in.Services {
		ks := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels},
			Spec: corev1.ServiceSpec{Selector: s.Selector, Type: corev1.ServiceType(s.Type),
				ClusterIP: fmt.Sprintf("10.%d.%d.%d", 96+i>>16&31, i>>8&255, i&255)}}
		slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: s.Name}}, AddressType: discoveryv1.AddressTypeIPv4}
		for _, p := range s.Ports {
			sp := corev1.ServicePort{Name: p.Name, Port: p.Port, Protocol: corev1.Protocol(p.Protocol), AppProtocol: p.AppProtocol}
			target := p.Port
			if n, err := strconv.Atoi(p.TargetPort); err == nil && n > 0 {
				sp.TargetPort, target = intstr.FromInt32(int32(n)), int32(n)
			} else if p.TargetPort != "" {
				sp.TargetPort = intstr.FromString(p.TargetPort)
			}
			ks.Spec.Ports = append(ks.Spec.Ports, sp)
			name, proto := p.Name, corev1.Protocol(p.Protocol)
			slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: &name, Port: &target, Protocol: &proto})
		}
		if len(s.Selector) > 0 {
			for _, p := range c.in.Pods {
				if p.Kind == "Pod" && p.Namespace == s.Namespace && selector(s.Selector).matches(p.Labels) {
					slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{ips[p]},
						TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name}})
				}
			}
		}
		kin.Services = append(kin.Services, ks)
		kin.EndpointSlices = append(kin.EndpointSlices, slice)
	}
	reg := aggregate.Merge(serviceentry.Build(c.in.Config, serviceentry.Options{}), kuberegistry.Build(kin, kuberegistry.Options{}))
	return proxies, reg
}
