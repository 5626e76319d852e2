package dashboard

import (
	"os"
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/analyze"
	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/store"
	"github.com/mast-mesh/mast/internal/pilot/ads"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Message is one analysis finding, with `mast analyze -o json`'s fields.
type Message struct {
	Code             string `json:"code"`
	Level            string `json:"level"`
	Message          string `json:"message"`
	Origin           string `json:"origin"`
	Reference        string `json:"reference,omitempty"`
	DocumentationURL string `json:"documentationUrl"`
	Kind             string `json:"kind"`
	Namespace        string `json:"namespace,omitempty"`
	Name             string `json:"name"`
}

// Resource is one configuration resource as the dashboard shows it.
type Resource struct {
	Key       string    `json:"key"` // Kind/namespace/name
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Source    string    `json:"source"` // file:line, relative to the config directory
	Messages  []Message `json:"messages"`
	// ProxyCount is how many connected proxies it shapes; the page asks
	// /ui/api/affected?key= for their IDs when it lists them (listing 20
	// per resource here was half the state's size at 1,000 services).
	ProxyCount int `json:"proxyCount"`
}

// ConfigView is the configuration in force, its analysis, and the files
// the store rejected.
type ConfigView struct {
	Resources []Resource        `json:"resources"`
	Rejected  []store.Rejection `json:"rejected"`
	// Others are findings about objects that are not configuration
	// resources (workloads, services, files the store rejected).
	Others []Message `json:"others"`
}

// Certificate is a proxy's workload certificate as the CA issued it.
type Certificate struct {
	Identity  string    `json:"identity"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

// ProxyView is one connected proxy: its xDS sync state per type (the data
// of `mast proxy-status`), its certificate and its stats scrape.
type ProxyView struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Namespace string            `json:"namespace"`
	Workload  string            `json:"workload"` // graph node ID
	IP        string            `json:"ip"`
	Identity  string            `json:"identity,omitempty"`
	Streams   []ads.ProxyStatus `json:"streams"`
	// NACKs counts the types whose latest response was rejected.
	NACKs       int           `json:"nacks"`
	Certificate *Certificate  `json:"certificate,omitempty"`
	Scrape      *TargetStatus `json:"scrape,omitempty"`
}

// PolicyView is the security policy in force for one workload.
type PolicyView struct {
	Workload               string   `json:"workload"` // graph node ID
	Namespace              string   `json:"namespace"`
	Name                   string   `json:"name"`
	Proxies                []string `json:"proxies"`
	MTLSMode               string   `json:"mtlsMode"` // PeerAuthentication: STRICT, PERMISSIVE or DISABLE
	PeerAuthentications    []string `json:"peerAuthentications"`
	AuthorizationPolicies  []Policy `json:"authorizationPolicies"`
	RequestAuthentications []string `json:"requestAuthentications"`
	Sidecar                string   `json:"sidecar,omitempty"`
}

// Policy is one AuthorizationPolicy applying to a workload.
type Policy struct {
	Key    string `json:"key"`
	Action string `json:"action"`
	Rules  int    `json:"rules"`
	DryRun bool   `json:"dryRun,omitempty"`
}

// State is everything the page shows except the graph.
type State struct {
	Version  string       `json:"version"` // the push context's version
	Config   ConfigView   `json:"config"`
	Proxies  []ProxyView  `json:"proxies"`
	Policies []PolicyView `json:"policies"`
}

func messageOf(m analyze.Message) Message {
	return Message{Code: m.Type.Code, Level: m.Type.Level.String(), Message: m.Text, Origin: m.Resource.FriendlyName(),
		Reference: m.Resource.Reference(), DocumentationURL: m.DocumentationURL(),
		Kind: m.Resource.Kind, Namespace: m.Resource.Namespace, Name: m.Resource.Name}
}

// AnalyzeMesh runs `mast analyze`'s analyzers over the store's files,
// with the connected proxies as the cluster's workloads: WorkloadEntries
// (Mast's workloads), and gateway proxies as pods behind a Service that
// exposes every port their Gateways listen on.
func AnalyzeMesh(st store.Status, proxies []*model.Proxy, rootNS string) []analyze.Message {
	in := analyze.NewInput()
	if rootNS != "" {
		in.Mesh.RootNamespace = rootNS
	}
	in.Batch(func() {
		files := map[string]bool{}
		for _, f := range st.Files {
			files[f.Path] = true
			if b, err := os.ReadFile(f.Path); err == nil {
				in.Add(f.Path, b)
			}
		}
		for _, r := range st.Rejected {
			if !files[r.Path] {
				if b, err := os.ReadFile(r.Path); err == nil {
					in.Add(r.Path, b)
				}
			}
		}
	})
	in.AddWorkloadEntries()
	for _, p := range proxies {
		if p.Type != model.Router {
			continue
		}
		labels := p.Labels
		in.Pods = append(in.Pods, &analyze.Pod{Object: analyze.Object{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, Labels: labels},
			Containers: []analyze.Container{{Name: "istio-proxy", Image: "mast-proxy"}}})
		svc := &analyze.Service{Object: analyze.Object{Kind: "Service", Namespace: p.Namespace, Name: p.Name, Labels: labels}, Selector: labels}
		seen := map[uint32]bool{}
		for _, r := range in.Config.List(config.Gateway) {
			g := r.Spec.(*networking.Gateway)
			if !model.LabelsMatch(g.GetSelector(), labels) {
				continue
			}
			for _, s := range g.GetServers() {
				if n := s.GetPort().GetNumber(); n != 0 && !seen[n] {
					seen[n] = true
					svc.Ports = append(svc.Ports, analyze.ServicePort{Name: strings.ToLower(s.GetPort().GetProtocol()), Port: int32(n), Protocol: "TCP"})
				}
			}
		}
		in.Services = append(in.Services, svc)
	}
	return analyze.Analyze(in)
}

// configView joins the snapshot, the analysis and the affected proxies.
func configView(snap *config.Snapshot, st store.Status, msgs []analyze.Message, affected affected) ConfigView {
	v := ConfigView{Resources: []Resource{}, Rejected: st.Rejected, Others: []Message{}}
	if v.Rejected == nil {
		v.Rejected = []store.Rejection{}
	}
	byKey := map[string]int{}
	for _, r := range snap.All() {
		k := resourceKey(r.Kind.Kind, r.Namespace, r.Name)
		byKey[k] = len(v.Resources)
		v.Resources = append(v.Resources, Resource{Key: k, Kind: r.Kind.Kind, Namespace: r.Namespace, Name: r.Name,
			Source: relativeSource(st.Dir, r.Source.String()), Messages: []Message{}, ProxyCount: affected.count(k)})
	}
	for _, m := range msgs {
		k := resourceKey(m.Resource.Kind, m.Resource.Namespace, m.Resource.Name)
		if i, ok := byKey[k]; ok {
			v.Resources[i].Messages = append(v.Resources[i].Messages, messageOf(m))
		} else {
			v.Others = append(v.Others, messageOf(m))
		}
	}
	return v
}

// relativeSource shortens a source in the config directory to its path there.
func relativeSource(dir, src string) string {
	if dir == "" {
		return src
	}
	if rel, ok := strings.CutPrefix(src, strings.TrimSuffix(dir, "/")+"/"); ok {
		return rel
	}
	return src
}

// spiffeID is the identity a proxy's certificate carries.
func spiffeID(p *model.Proxy, trustDomain string) string {
	sa := p.ServiceAccount
	if sa == "" {
		return ""
	}
	if strings.HasPrefix(sa, "spiffe://") {
		return sa
	}
	return "spiffe://" + trustDomain + "/ns/" + p.Namespace + "/sa/" + sa
}

func proxyViews(proxies []*model.Proxy, status []ads.ProxyStatus, certs []Certificate, scrapes []TargetStatus, trustDomain string) []ProxyView {
	byID := map[string][]ads.ProxyStatus{}
	for _, s := range status {
		byID[s.ID] = append(byID[s.ID], s)
	}
	certBy := map[string]*Certificate{}
	for i := range certs {
		certBy[certs[i].Identity] = &certs[i]
	}
	scrapeBy := map[string]*TargetStatus{}
	for i := range scrapes {
		scrapeBy[scrapes[i].ProxyID] = &scrapes[i]
	}
	out := make([]ProxyView, 0, len(proxies))
	for _, p := range proxies {
		w := WorkloadOf(p)
		v := ProxyView{ID: p.ID, Type: string(p.Type), Namespace: p.Namespace, Workload: workloadID(w.Namespace, w.Name), IP: p.IP(),
			Streams: byID[p.ID], Scrape: scrapeBy[p.ID]}
		if v.Streams == nil {
			v.Streams = []ads.ProxyStatus{}
		}
		for _, s := range v.Streams {
			for _, t := range s.Types {
				if t.State == ads.StateNACKed {
					v.NACKs++
				}
			}
		}
		if p.HasWorkloadCert() {
			v.Identity = spiffeID(p, trustDomain)
			v.Certificate = certBy[v.Identity]
		}
		out = append(out, v)
	}
	return out
}

func policyViews(pc *model.PushContext, proxies []*model.Proxy) []PolicyView {
	out := []PolicyView{}
	if pc == nil || pc.Config == nil {
		return out
	}
	byWL := map[string]int{}
	for _, p := range proxies {
		w := WorkloadOf(p)
		id := workloadID(w.Namespace, w.Name)
		if i, ok := byWL[id]; ok {
			out[i].Proxies = append(out[i].Proxies, p.ID)
			continue
		}
		v := PolicyView{Workload: id, Namespace: w.Namespace, Name: w.Name, Proxies: []string{p.ID},
			MTLSMode: pc.MTLSModeFor(p.Namespace, p.Labels, 0).String(), PeerAuthentications: []string{},
			AuthorizationPolicies: []Policy{}, RequestAuthentications: []string{}}
		for _, r := range pc.Config.List(config.PeerAuthentication) {
			pa := r.Spec.(*security.PeerAuthentication)
			if pc.PolicyApplies(p, r.Namespace, pa.GetSelector(), nil, nil) {
				v.PeerAuthentications = append(v.PeerAuthentications, resourceKey("PeerAuthentication", r.Namespace, r.Name))
			}
		}
		for _, r := range pc.Config.List(config.AuthorizationPolicy) {
			ap := r.Spec.(*security.AuthorizationPolicy)
			if pc.PolicyApplies(p, r.Namespace, ap.GetSelector(), ap.GetTargetRef(), ap.GetTargetRefs()) {
				v.AuthorizationPolicies = append(v.AuthorizationPolicies, Policy{Key: resourceKey("AuthorizationPolicy", r.Namespace, r.Name),
					Action: ap.GetAction().String(), Rules: len(ap.GetRules()), DryRun: r.Annotations["istio.io/dry-run"] == "true"})
			}
		}
		for _, r := range pc.Config.List(config.RequestAuthentication) {
			ra := r.Spec.(*security.RequestAuthentication)
			if pc.PolicyApplies(p, r.Namespace, ra.GetSelector(), ra.GetTargetRef(), ra.GetTargetRefs()) {
				v.RequestAuthentications = append(v.RequestAuthentications, resourceKey("RequestAuthentication", r.Namespace, r.Name))
			}
		}
		if p.Type != model.Router {
			if sc := pc.SidecarFor(p); sc != nil {
				v.Sidecar = resourceKey("Sidecar", sc.Namespace, sc.Name)
			}
		}
		byWL[id] = len(out)
		out = append(out, v)
	}
	return out
}
