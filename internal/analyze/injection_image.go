package analyze

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"istio.io/api/annotation"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networkingbeta "istio.io/api/networking/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/mast-mesh/mast/internal/config"
)

// The message types of the injection image analyzers (Istio's codes).
var (
	ImageAutoWithoutInjectionWarning       = MessageType{"IST0146", "ImageAutoWithoutInjectionWarning", Warning, "%s %s contains `image: auto` but does not match any Istio injection webhook selectors."}
	ImageAutoWithoutInjectionError         = MessageType{"IST0147", "ImageAutoWithoutInjectionError", Error, "%s %s contains `image: auto` but does not match any Istio injection webhook selectors."}
	PodsIstioProxyImageMismatchInNamespace = MessageType{"IST0158", "PodsIstioProxyImageMismatchInNamespace", Warning, "The Istio proxy images of the pods running in the namespace do not match the image defined in the injection configuration (pod names: %v). This often happens after upgrading the Istio control-plane and can be fixed by redeploying the pods."}
)

// analyzeProxyImages follows Istio's injection.ImageAnalyzer: in a
// namespace with injection on, a pod's istio-proxy image must be the one
// the injector ConfigMap of the namespace's revision names (or its
// image-type variant), else the namespace is reported (IST0158).
func analyzeProxyImages(c *context) {
	if len(c.in.InjectorValues) == 0 {
		return
	}
	images := map[string]string{}
	for name, values := range c.in.InjectorValues {
		images[name] = injectorProxyImage(values)
	}
	injected := map[string]string{} // namespace -> revision
	nsRef := map[string]*Object{}
	for _, n := range c.in.Namespaces {
		nsRef[n.Name] = n
		if rev, ok := n.Labels["istio.io/rev"]; ok {
			injected[n.Name] = rev
		} else if n.Labels["istio-injection"] == "enabled" {
			injected[n.Name] = "default"
		}
	}
	variants := newImageTypes(c)
	mismatched := map[string][]string{}
	for _, p := range c.in.Pods {
		rev, ok := injected[p.Namespace]
		if p.Kind != "Pod" || !ok || p.Annotations[annotation.SidecarProxyImage.Name] != "" {
			continue
		}
		name := "istio-sidecar-injector"
		if rev != "" && rev != "default" {
			name += "-" + rev
		}
		variant := variants.of(p)
		for _, ct := range append(append([]Container(nil), p.Containers...), p.InitContainers...) {
			if ct.Name != "istio-proxy" {
				continue
			}
			image, ok := images[name]
			if !ok {
				break
			}
			if ct.Image != image && ct.Image != image+"-"+variant {
				mismatched[p.Namespace] = append(mismatched[p.Namespace], p.Name)
			}
		}
	}
	for _, ns := range sortedKeys(mismatched) {
		if nsRef[ns] == nil {
			continue
		}
		pods := mismatched[ns]
		sort.Strings(pods)
		c.report(newMessage(PodsIstioProxyImageMismatchInNamespace, nsRef[ns].Ref(), pods))
	}
}

// injectorProxyImage is the proxy image an injector ConfigMap's values name.
func injectorProxyImage(values string) string {
	var v struct {
		Global struct {
			Hub   string `json:"hub"`
			Tag   string `json:"tag"`
			Proxy struct {
				Image string `json:"image"`
			} `json:"proxy"`
		} `json:"global"`
	}
	if json.Unmarshal([]byte(values), &v) != nil {
		return ""
	}
	if strings.Contains(v.Global.Proxy.Image, "/") {
		return v.Global.Proxy.Image
	}
	return fmt.Sprintf("%s/%s:%s", v.Global.Hub, v.Global.Proxy.Image, v.Global.Tag)
}

// imageTypes resolves a pod's proxy image type as Istio does: mesh
// config, then the root namespace's ProxyConfig, the pod namespace's, a
// selecting one, and the pod's proxy.istio.io/config annotation.
type imageTypes struct {
	mesh       *meshconfig.MeshConfig
	root       *networkingbeta.ProxyConfig
	namespaces map[string]*networkingbeta.ProxyConfig
	workloads  []config.Resource
}

func newImageTypes(c *context) *imageTypes {
	t := &imageTypes{mesh: c.in.Mesh, namespaces: map[string]*networkingbeta.ProxyConfig{}}
	root := c.in.Mesh.GetRootNamespace()
	if root == "" {
		root = "istio-system"
	}
	for _, r := range c.in.Config.List(config.ProxyConfig) {
		pc := r.Spec.(*networkingbeta.ProxyConfig)
		switch {
		case r.Namespace == root:
			t.root = pc
		case pc.GetSelector() == nil:
			t.namespaces[r.Namespace] = pc
		default:
			t.workloads = append(t.workloads, r)
		}
	}
	return t
}

func (t *imageTypes) of(p *Pod) string {
	variant := t.mesh.GetDefaultConfig().GetImage().GetImageType()
	if v := t.root.GetImage().GetImageType(); v != "" {
		variant = v
	}
	if v := t.namespaces[p.Namespace].GetImage().GetImageType(); v != "" {
		variant = v
	}
	for _, r := range t.workloads {
		pc := r.Spec.(*networkingbeta.ProxyConfig)
		if r.Namespace == p.Namespace && selector(pc.GetSelector().GetMatchLabels()).matches(p.Labels) {
			if v := pc.GetImage().GetImageType(); v != "" {
				variant = v
			}
		}
	}
	if a, ok := p.Annotations[annotation.ProxyConfig.Name]; ok {
		if pc, err := proxyConfigAnnotation(a); err == nil && pc.GetImage().GetImageType() != "" {
			variant = pc.GetImage().GetImageType()
		}
	}
	if variant == "default" {
		return ""
	}
	return variant
}

// analyzeImageAuto follows Istio's injection.ImageAutoAnalyzer: a pod with
// an istio-proxy container of image "auto" was not injected (IST0147); a
// Deployment with one is reported unless an Istio injection webhook
// selects its namespace and pod template (IST0146).
func analyzeImageAuto(c *context) {
	autoImage := func(cts []Container) bool {
		for _, ct := range cts {
			if ct.Name == "istio-proxy" && ct.Image == "auto" {
				return true
			}
		}
		return false
	}
	for _, p := range c.in.Pods {
		if p.Kind == "Pod" && autoImage(p.Containers) {
			c.report(newMessage(ImageAutoWithoutInjectionError, p.Ref(), "Pod", p.Name))
		}
	}
	for _, d := range c.in.Deployments {
		if !autoImage(d.Containers) {
			continue
		}
		var nsLabels map[string]string
		if n := c.namespace(d.Namespace); n != nil {
			nsLabels = n.Labels
		}
		matched := false
		for _, w := range c.in.Webhooks {
			if strings.HasSuffix(w.Name, "istio.io") && labelSelectorMatches(w.NamespaceSelector, nsLabels) &&
				labelSelectorMatches(w.ObjectSelector, d.TemplateLabels) {
				matched = true
				break
			}
		}
		if !matched {
			c.report(newMessage(ImageAutoWithoutInjectionWarning, d.Ref(), "Deployment", d.Name))
		}
	}
}

// labelSelectorMatches is a webhook's selector test: no selector matches everything.
func labelSelectorMatches(s *metav1.LabelSelector, set map[string]string) bool {
	if s == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(set))
}
