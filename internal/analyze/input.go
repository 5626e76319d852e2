package analyze

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mast-mesh/mast/internal/config"
)

// Object is the metadata of a Kubernetes object the analyzers read.
type Object struct {
	Kind        string
	Namespace   string // "" for Namespace objects
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	File        string
	Line        int
}

// Ref returns the object's reference for messages.
func (o *Object) Ref() Ref {
	return Ref{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, File: o.File, Line: o.Line}
}

// ServicePort is a port of a Kubernetes Service.
type ServicePort struct {
	Name        string
	Port        int32
	TargetPort  string // as written: a number, a name, or ""
	Protocol    string // TCP when not written (Kubernetes' default)
	AppProtocol *string
}

// Service is a Kubernetes Service.
type Service struct {
	Object
	Type     string
	Selector map[string]string
	Ports    []ServicePort
}

// Container is a container of a pod (or of a Deployment's pod template).
type Container struct {
	Name, Image string
	RunAsUser   *int64 // securityContext.runAsUser
}

// Pod is a Kubernetes Pod.
type Pod struct {
	Object
	NodeName       string
	HostNetwork    bool
	Containers     []Container
	InitContainers []Container
	RunAsUser      *int64 // the pod's securityContext.runAsUser
}

// Deployment is a Kubernetes Deployment: what the analyzers need is its pod template.
type Deployment struct {
	Object
	TemplateLabels      map[string]string
	TemplateAnnotations map[string]string
	Containers          []Container
	RunAsUser           *int64 // the pod template's securityContext.runAsUser
}

// EnvoyFilter is an EnvoyFilter and the line of each of its configPatches.
type EnvoyFilter struct {
	Object
	Spec       *networking.EnvoyFilter
	PatchLines []int
}

// KubeGateway is a Kubernetes Gateway API Gateway: the hostnames of its listeners.
type KubeGateway struct {
	Object
	Hostnames []string // "" for a listener without hostname (every host)
}

// Secret is a Kubernetes Secret: its data, decoded.
type Secret struct {
	Object
	Data map[string][]byte
}

// InjectionWebhook is a webhook of a MutatingWebhookConfiguration.
type InjectionWebhook struct {
	Name                              string
	NamespaceSelector, ObjectSelector *metav1.LabelSelector
}

// Input is what the analyzers look at: Istio configuration and the
// cluster's contents (Services, Pods, Deployments, Namespaces) and the mesh config.
type Input struct {
	Config      *config.Snapshot
	Services    []*Service
	Pods        []*Pod
	Deployments []*Deployment
	Namespaces  []*Object
	Secrets     []*Secret
	// SecretsComplete says Secrets holds every Secret there is, so that a
	// Gateway's credentialName naming none of them is missing (IST0101).
	SecretsComplete bool
	// Webhooks are the webhooks of MutatingWebhookConfigurations.
	Webhooks []InjectionWebhook
	// KubeGateways are Gateway API Gateways (gateway.networking.k8s.io).
	KubeGateways []*KubeGateway
	// EnvoyFilters are read for analysis only: mastd does not apply them.
	EnvoyFilters []*EnvoyFilter
	// NodeLabels are the labels of Kubernetes Nodes, by name (for pod localities).
	NodeLabels map[string]map[string]string
	// InjectorValues is the "values" of the istio-sidecar-injector ConfigMaps, by name.
	InjectorValues map[string]string
	Mesh           *meshconfig.MeshConfig
	// SEAddressesAllocated holds the ServiceEntries (namespace/name) whose
	// status carries allocated addresses.
	SEAddressesAllocated map[string]bool
	// Problems are the validation findings of the Istio resources read
	// (decoding and schema errors and warnings).
	Problems config.Problems
	// Skipped counts documents of kinds no analyzer reads, by kind.
	Skipped map[string]int
	// RegistryConflicts are the hostnames several registries of a running
	// mastd have (its /debug/registryz).
	RegistryConflicts []RegistryConflict

	batch    []config.Resource // Istio resources added during Batch
	batching bool
}

// NewInput returns an empty input with Istio's default mesh config.
func NewInput() *Input {
	return &Input{Config: config.NewSnapshot(nil), Mesh: DefaultMeshConfig(), SEAddressesAllocated: map[string]bool{},
		Skipped: map[string]int{}, InjectorValues: map[string]string{}, NodeLabels: map[string]map[string]string{}}
}

// DefaultMeshConfig is the part of Istio's default MeshConfig the analyzers use.
func DefaultMeshConfig() *meshconfig.MeshConfig {
	return &meshconfig.MeshConfig{RootNamespace: "istio-system", IngressService: "istio-ingressgateway",
		IngressControllerMode: meshconfig.MeshConfig_STRICT, DefaultConfig: &meshconfig.ProxyConfig{}}
}

// LoadMeshConfig reads a MeshConfig file: the MeshConfig itself in YAML, or
// the istio ConfigMap holding it under data.mesh.
func LoadMeshConfig(path string) (*meshconfig.MeshConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(b, &probe); err == nil && probe.Kind == "ConfigMap" {
		b = []byte(probe.Data["mesh"])
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	j, err := jsonOf(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	mc := DefaultMeshConfig()
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(j, mc); err != nil {
		return nil, fmt.Errorf("%s: not a MeshConfig: %w", path, err)
	}
	if mc.DefaultConfig == nil {
		mc.DefaultConfig = &meshconfig.ProxyConfig{}
	}
	return mc, nil
}

// Add reads one file of YAML (or JSON) documents: Istio's kinds go through
// Mast's decoder and validation, Kubernetes Services, Pods, Deployments and
// Namespaces become the cluster's contents, and other kinds are counted in
// Skipped.
func (in *Input) Add(file string, data []byte) {
	docs := splitYAML(data)
	// Istio's kinds are decoded from a copy of the file in which every other
	// document is blanked out line for line, so lines stay right.
	istio := make([][]byte, len(docs))
	any := false
	var istioDocs []istioDoc
	for i, d := range docs {
		var n yaml.Node
		if err := yaml.Unmarshal(d.text, &n); err != nil || len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
			istio[i] = d.text // let the decoder report it
			any = any || len(bytes.TrimSpace(d.text)) > 0
			continue
		}
		root := n.Content[0]
		apiVersion, kind := scalar(root, "apiVersion"), scalar(root, "kind")
		group, _, _ := strings.Cut(apiVersion, "/")
		if kind == "EnvoyFilter" && group == "networking.istio.io" {
			in.addEnvoyFilter(file, d.line, root) // for the patch operation checks, with each patch's line
		}
		if strings.HasSuffix(group, "istio.io") {
			istio[i] = d.text
			any = true
			istioDocs = append(istioDocs, istioDoc{line: d.line, apiVersion: apiVersion, kind: kind, root: root})
			if kind == "ServiceEntry" {
				if st := field(root, "status"); st != nil && len(seq(field(st, "addresses"))) > 0 {
					meta := field(root, "metadata")
					ns := scalar(meta, "namespace")
					if ns == "" {
						ns = "default"
					}
					in.SEAddressesAllocated[ns+"/"+scalar(meta, "name")] = true
				}
			}
			continue
		}
		istio[i] = blank(d.text)
		in.addKube(file, d.line, apiVersion, kind, root)
	}
	if !any {
		return
	}
	var buf bytes.Buffer
	for i, t := range istio {
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(t)
	}
	decoded := in.addIstio(file, buf.Bytes(), 0)
	var lenient []config.Resource
	for _, d := range istioDocs {
		if r, ok := d.lenient(file); ok && !decoded[r.Key()] {
			lenient = append(lenient, r)
		}
	}
	in.addResources(lenient)
}

// istioDoc is a document of an Istio kind.
type istioDoc struct {
	line             int
	apiVersion, kind string
	root             *yaml.Node
}

// lenient decodes a document that Mast's decoder refused (its errors are
// reported) as Istio's own reading of files does: its spec by protojson,
// unknown fields dropped, required fields not enforced. Istio's analyzers
// look at such resources too; a document that cannot be read even so is
// left out.
func (d istioDoc) lenient(file string) (config.Resource, bool) {
	group, _, _ := strings.Cut(d.apiVersion, "/")
	kind := config.Kind{Group: group, Kind: d.kind}
	spec := config.NewSpec(kind)
	meta := field(d.root, "metadata")
	name := scalar(meta, "name")
	if spec == nil || name == "" {
		return config.Resource{}, false
	}
	if s := field(d.root, "spec"); s != nil {
		var v any
		if s.Decode(&v) != nil {
			return config.Resource{}, false
		}
		j, err := jsonOf(v)
		if err != nil || (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(j, spec) != nil {
			return config.Resource{}, false
		}
	}
	ns := scalar(meta, "namespace")
	if ns == "" {
		ns = "default"
	}
	return config.Resource{Meta: config.Meta{Kind: kind, APIVersion: d.apiVersion, Name: name, Namespace: ns,
		Labels: stringMap(field(meta, "labels")), Annotations: stringMap(field(meta, "annotations")),
		Source: config.Source{File: file, Line: d.line + d.root.Line - 1}}, Spec: spec}, true
}

// addIstio decodes Istio documents and validates each resource. Unlike
// mastd, analysis keeps resources that fail validation (as Istio's analyzers
// do): they are reported (IST0106) and analyzed like the others. Only what
// cannot be decoded at all is left out. lineOff shifts the lines of
// resources decoded from a fragment of the file.
func (in *Input) addIstio(file string, data []byte, lineOff int) map[config.Key]bool {
	rs, err := config.Decode(file, data)
	var probs config.Problems
	if err != nil {
		if ps, ok := err.(config.Problems); ok {
			probs = ps
		} else {
			probs = config.Problems{{Severity: config.Error, Source: config.Source{File: file}, Message: err.Error()}}
		}
	}
	for i := range rs {
		rs[i].Source.Line += lineOff
		probs = append(probs, config.Validate(rs[i])...)
	}
	for i := range probs {
		if probs[i].Source.Line > 0 {
			probs[i].Source.Line += lineOff
		}
	}
	in.Problems = append(in.Problems, probs...)
	in.addResources(rs)
	keys := make(map[config.Key]bool, len(rs))
	for _, r := range rs {
		keys[r.Key()] = true
	}
	return keys
}

func (in *Input) addResources(rs []config.Resource) {
	if len(rs) == 0 {
		return
	}
	if in.batching {
		in.batch = append(in.batch, rs...)
		return
	}
	in.Config = in.Config.Update(rs, nil)
}

// Batch runs add (calls of Add) and updates Config once at the end, with
// the resources in the order added, instead of once per file: each update
// copies the snapshot, which over thousands of files is quadratic. Config
// must not be read inside add.
func (in *Input) Batch(add func()) {
	in.batching = true
	add()
	in.batching = false
	in.Config = in.Config.Update(in.batch, nil)
	in.batch = nil
}

type yamlDoc struct {
	text []byte
	line int // 1-based line of the document's first line in the file
}

// splitYAML splits a file at its "---" lines, keeping every line.
func splitYAML(b []byte) []yamlDoc {
	var docs []yamlDoc
	var cur bytes.Buffer
	start, line := 1, 0
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		line++
		t := bytes.TrimRight(l, " \t\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			docs = append(docs, yamlDoc{text: bytes.Clone(cur.Bytes()), line: start})
			cur.Reset()
			start = line + 1
			continue
		}
		cur.Write(l)
	}
	return append(docs, yamlDoc{text: bytes.Clone(cur.Bytes()), line: start})
}

// blank keeps a document's line count and nothing else.
func blank(b []byte) []byte {
	return bytes.Repeat([]byte("\n"), bytes.Count(b, []byte("\n")))
}

func (in *Input) addEnvoyFilter(file string, line int, root *yaml.Node) {
	meta := field(root, "metadata")
	o := Object{Kind: "EnvoyFilter", Name: scalar(meta, "name"), Namespace: scalar(meta, "namespace"),
		Labels: stringMap(field(meta, "labels")), Annotations: stringMap(field(meta, "annotations")), File: file, Line: line}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	spec := field(root, "spec")
	var v any
	ef := &networking.EnvoyFilter{}
	if spec != nil && spec.Decode(&v) == nil {
		if j, err := jsonOf(v); err == nil {
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(j, ef); err != nil {
				in.Problems = append(in.Problems, config.Problem{Severity: config.Error, Source: config.Source{File: file, Line: line},
					Resource: config.Key{Kind: config.Kind{Group: "networking.istio.io", Kind: "EnvoyFilter"}, Namespace: o.Namespace, Name: o.Name},
					Message:  err.Error()})
				return
			}
		}
	}
	f := &EnvoyFilter{Object: o, Spec: ef}
	for _, p := range seq(field(spec, "configPatches")) {
		f.PatchLines = append(f.PatchLines, line+p.Line-1)
	}
	in.EnvoyFilters = append(in.EnvoyFilters, f)
}

// systemNamespaces hold Kubernetes' own workloads; like Istio, analysis leaves them out.
var systemNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true, "local-path-storage": true}

func (in *Input) addKube(file string, line int, apiVersion, kind string, root *yaml.Node) {
	meta := field(root, "metadata")
	o := Object{Kind: kind, Name: scalar(meta, "name"), Namespace: scalar(meta, "namespace"),
		Labels: stringMap(field(meta, "labels")), Annotations: stringMap(field(meta, "annotations")), File: file, Line: line}
	if o.Namespace == "" && kind != "Namespace" {
		o.Namespace = "default"
	}
	if systemNamespaces[o.Namespace] {
		return
	}
	spec := field(root, "spec")
	if kind == "Gateway" && strings.HasPrefix(apiVersion, "gateway.networking.k8s.io/") {
		g := &KubeGateway{Object: o}
		for _, l := range seq(field(spec, "listeners")) {
			g.Hostnames = append(g.Hostnames, scalar(l, "hostname"))
		}
		in.KubeGateways = append(in.KubeGateways, g)
		return
	}
	switch kind {
	case "Service":
		s := &Service{Object: o, Type: scalar(spec, "type"), Selector: stringMap(field(spec, "selector"))}
		for _, p := range seq(field(spec, "ports")) {
			n, _ := strconv.Atoi(scalar(p, "port"))
			sp := ServicePort{Name: scalar(p, "name"), Port: int32(n), TargetPort: scalar(p, "targetPort"), Protocol: scalar(p, "protocol")}
			if sp.Protocol == "" {
				sp.Protocol = "TCP"
			}
			if ap := field(p, "appProtocol"); ap != nil {
				v := ap.Value
				sp.AppProtocol = &v
			}
			s.Ports = append(s.Ports, sp)
		}
		in.Services = append(in.Services, s)
	case "Pod":
		in.Pods = append(in.Pods, &Pod{Object: o, NodeName: scalar(spec, "nodeName"), HostNetwork: scalar(spec, "hostNetwork") == "true",
			Containers: containers(field(spec, "containers")), InitContainers: containers(field(spec, "initContainers")),
			RunAsUser: runAsUser(spec)})
	case "Deployment":
		tmpl := field(spec, "template")
		tmeta := field(tmpl, "metadata")
		in.Deployments = append(in.Deployments, &Deployment{Object: o, TemplateLabels: stringMap(field(tmeta, "labels")),
			TemplateAnnotations: stringMap(field(tmeta, "annotations")), Containers: containers(field(field(tmpl, "spec"), "containers")),
			RunAsUser: runAsUser(field(tmpl, "spec"))})
	case "Node":
		in.NodeLabels[o.Name] = o.Labels
	case "Secret":
		sec := &Secret{Object: o, Data: map[string][]byte{}}
		data := field(root, "data")
		for _, k := range sortedKeys(stringMap(data)) {
			if b, err := base64.StdEncoding.DecodeString(scalar(data, k)); err == nil {
				sec.Data[k] = b
			}
		}
		for k, v := range stringMap(field(root, "stringData")) {
			sec.Data[k] = []byte(v)
		}
		in.Secrets = append(in.Secrets, sec)
	case "MutatingWebhookConfiguration":
		for _, w := range seq(field(root, "webhooks")) {
			in.Webhooks = append(in.Webhooks, InjectionWebhook{Name: scalar(w, "name"),
				NamespaceSelector: labelSelector(field(w, "namespaceSelector")), ObjectSelector: labelSelector(field(w, "objectSelector"))})
		}
	case "ConfigMap":
		if strings.HasPrefix(o.Name, "istio-sidecar-injector") {
			in.InjectorValues[o.Name] = scalar(field(root, "data"), "values")
		}
	case "Namespace":
		o.Namespace = ""
		in.Namespaces = append(in.Namespaces, &o)
	case "List":
		for _, item := range seq(field(root, "items")) {
			apiVersion := scalar(item, "apiVersion")
			if group, _, _ := strings.Cut(apiVersion, "/"); strings.HasSuffix(group, "istio.io") {
				text, err := yaml.Marshal(item)
				if err == nil {
					in.addIstio(file, text, line+item.Line-2)
				}
				continue
			}
			in.addKube(file, line+item.Line-1, apiVersion, scalar(item, "kind"), item)
		}
	default:
		if kind != "" {
			in.Skipped[kind]++
		}
	}
}

// Offline completes an input read from files as `mast analyze -f` does:
// the files are the whole cluster, so their Secrets are all there are;
// WorkloadEntries count as workloads; and Istio's default ingress gateway
// is assumed present.
func (in *Input) Offline() {
	in.SecretsComplete = true
	in.AddWorkloadEntries()
	in.AddDefaults()
}

// AddWorkloadEntries adds every WorkloadEntry as a workload (a pod with the
// entry's labels and a sidecar): in Mast's registry they are the workloads
// that subsets and selectors pick.
func (in *Input) AddWorkloadEntries() {
	for _, r := range in.Config.List(config.WorkloadEntry) {
		we := r.Spec.(*networking.WorkloadEntry)
		in.Pods = append(in.Pods, &Pod{Object: Object{Kind: "WorkloadEntry", Namespace: r.Namespace, Name: r.Name,
			Labels: we.GetLabels(), Annotations: map[string]string{}, File: r.Source.File, Line: r.Source.Line},
			Containers: []Container{{Name: "istio-proxy", Image: "mast-proxy"}}})
	}
}

// AddDefaults adds what Istio's analyzer assumes present in every cluster:
// the default ingress gateway's pod and Service in the root namespace
// (unless the mesh config turns the ingress controller off).
func (in *Input) AddDefaults() {
	if in.Mesh.GetIngressControllerMode() == meshconfig.MeshConfig_OFF {
		return
	}
	ns, svc := "istio-system", in.Mesh.GetIngressService()
	if svc == "" {
		svc = "istio-ingressgateway"
	}
	labels := map[string]string{"istio": "ingressgateway"}
	in.Pods = append(in.Pods, &Pod{Object: Object{Kind: "Pod", Namespace: ns, Name: svc + "-dummypod", Labels: labels, File: "internal-ingress"},
		Containers: []Container{{Name: "istio-proxy"}}})
	s := &Service{Object: Object{Kind: "Service", Namespace: ns, Name: svc, Labels: map[string]string{}, File: "internal-ingress"}, Selector: labels}
	for _, p := range []struct {
		name string
		port int32
	}{{"http2", 80}, {"https", 443}, {"tcp", 31400}, {"tls", 15443}} {
		s.Ports = append(s.Ports, ServicePort{Name: p.name, Port: p.port, TargetPort: strconv.Itoa(int(p.port)), Protocol: "TCP"})
	}
	in.Services = append(in.Services, s)
}

// labelSelector decodes a Kubernetes label selector; nil when absent or
// malformed.
func labelSelector(n *yaml.Node) *metav1.LabelSelector {
	if n == nil {
		return nil
	}
	var v any
	if n.Decode(&v) != nil {
		return nil
	}
	j, err := jsonOf(v)
	if err != nil {
		return nil
	}
	var ls metav1.LabelSelector
	if json.Unmarshal(j, &ls) != nil {
		return nil
	}
	return &ls
}

func containers(n *yaml.Node) []Container {
	var out []Container
	for _, c := range seq(n) {
		out = append(out, Container{Name: scalar(c, "name"), Image: scalar(c, "image"), RunAsUser: runAsUser(c)})
	}
	return out
}

// runAsUser returns securityContext.runAsUser of a pod spec or container.
func runAsUser(n *yaml.Node) *int64 {
	v := scalar(field(n, "securityContext"), "runAsUser")
	if v == "" {
		return nil
	}
	u, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil
	}
	return &u
}

func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node, key string) string {
	if v := field(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

func seq(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func stringMap(n *yaml.Node) map[string]string {
	out := map[string]string{}
	if n == nil || n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = n.Content[i+1].Value
	}
	return out
}

func jsonOf(v any) ([]byte, error) {
	return jsonMarshal(normalize(v))
}

// normalize turns YAML's map[string]any trees into JSON-encodable ones.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
	}
	return v
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
