package analyze

import (
	"encoding/json"
	"strings"

	"istio.io/api/annotation"
)

// analyzeInjection: a namespace should say whether it wants sidecars
// (IST0102, or IST0148 when injection is on by default), with one kind of
// injection label only (IST0123); pods of an injected namespace need their
// proxy (IST0103).
func analyzeInjection(c *context) {
	injected := map[string]bool{}
	for _, n := range c.in.Namespaces {
		if n.Name == "istio-system" {
			continue
		}
		injection, hasInjection := n.Labels["istio-injection"]
		rev, hasRev := n.Labels["istio.io/rev"]
		var labels []string
		if hasInjection {
			labels = append(labels, "istio-injection="+injection)
		}
		for _, l := range []string{"istio.io/rev", "istio.io/dataplane-mode"} {
			if v, ok := n.Labels[l]; ok && (!hasInjection || injection == "enabled") {
				labels = append(labels, l+"="+v)
			}
		}
		if len(labels) > 1 {
			c.report(newMessage(NamespaceMultipleInjectionLabels, n.Ref(), labels))
		}
		if n.Labels["istio.io/dataplane-mode"] == "ambient" {
			continue
		}
		if injection == "" && !hasRev {
			if c.enabledByDefault(rev) {
				c.report(newMessage(NamespaceInjectionEnabledByDefault, n.Ref()))
				continue
			}
			c.report(newMessage(NamespaceNotInjected, n.Ref(), n.Name, n.Name))
			continue
		}
		if injection == "enabled" {
			injected[n.Name] = true
		}
	}
	for _, p := range c.in.Pods {
		if !injected[p.Namespace] || p.HostNetwork {
			continue
		}
		inj := p.Annotations[annotation.SidecarInject.Name]
		if v, ok := p.Labels["sidecar.istio.io/inject"]; ok {
			inj = v
		}
		if strings.EqualFold(inj, "false") {
			continue
		}
		image := ""
		for _, ct := range append(append([]Container(nil), p.Containers...), p.InitContainers...) {
			if ct.Name == "istio-proxy" {
				image = ct.Image
				break
			}
		}
		if image == "" {
			c.report(newMessage(PodMissingProxy, p.Ref(), p.Namespace+"/"+p.Name))
		}
	}
}

// enabledByDefault reads sidecarInjectorWebhook.enableNamespacesByDefault
// from the injector ConfigMap of revision rev.
func (c *context) enabledByDefault(rev string) bool {
	name := "istio-sidecar-injector"
	if rev != "" && rev != "default" {
		name += "-" + rev
	}
	var values struct {
		Webhook struct {
			EnableNamespacesByDefault bool `json:"enableNamespacesByDefault"`
		} `json:"sidecarInjectorWebhook"`
	}
	if json.Unmarshal([]byte(c.in.InjectorValues[name]), &values) != nil {
		return false
	}
	return values.Webhook.EnableNamespacesByDefault
}

// analyzeApplicationUID: UID 1337 is the sidecar's; an application running
// as it escapes traffic capture (IST0144).
func analyzeApplicationUID(c *context) {
	check := func(o *Object, podUser *int64, cts []Container) {
		if _, ok := o.Labels["istio"]; ok || o.Labels["release"] == "istio" {
			return
		}
		if podUser != nil && *podUser == 1337 {
			c.report(newMessage(InvalidApplicationUID, o.Ref()))
		}
		for _, ct := range cts {
			if ct.Name != "istio-proxy" && ct.Name != "istio-operator" && ct.RunAsUser != nil && *ct.RunAsUser == 1337 {
				c.report(newMessage(InvalidApplicationUID, o.Ref()))
			}
		}
	}
	for _, p := range c.in.Pods {
		check(&p.Object, p.RunAsUser, p.Containers)
	}
	for _, d := range c.in.Deployments {
		check(&d.Object, d.RunAsUser, d.Containers)
	}
}
