package analyze

import (
	"slices"
	"sort"
	"strconv"
	"strings"
)

// portProtocol is Istio's ConvertProtocol: the protocol a Service port
// carries by its protocol, appProtocol or name prefix; "" when unsupported.
func portProtocol(p ServicePort) string {
	if p.Protocol == "UDP" {
		return "UDP"
	}
	name := p.Name
	if p.AppProtocol != nil {
		name = *p.AppProtocol
		switch name {
		case "kubernetes.io/h2c":
			return "HTTP2"
		case "kubernetes.io/ws":
			return "HTTP"
		case "kubernetes.io/wss":
			return "HTTPS"
		}
	}
	if len(name) >= 8 && strings.EqualFold(name[:8], "grpc-web") {
		return "GRPC-Web"
	}
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[:i]
	}
	switch strings.ToLower(name) {
	case "tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls", "mongo", "redis", "mysql":
		return strings.ToUpper(name)
	}
	switch p.Port {
	case 25, 53, 3306, 27017: // SMTP, DNS, MySQL, MongoDB
		return "TCP"
	}
	return ""
}

// analyzePortNames: a Service port's name (or appProtocol) should say its
// protocol (IST0118; IST0150 for ExternalName services). The control plane's
// own Services are left alone.
func analyzePortNames(c *context) {
	for _, s := range c.in.Services {
		if s.File == "internal-ingress" {
			continue
		}
		if _, ok := s.Labels["istio"]; ok || s.Labels["release"] == "istio" {
			continue
		}
		switch s.Labels["gateway.istio.io/managed"] {
		case "istio.io-gateway-controller", "istio.io-mesh-controller", "istio.io-eastwest-controller":
			continue
		}
		for _, p := range s.Ports {
			if portProtocol(p) != "" && !(p.Name == "tcp" && s.Type == "ExternalName") {
				continue
			}
			if s.Type == "ExternalName" {
				c.report(newMessage(ExternalNameServiceTypeInvalidPortName, s.Ref()))
				continue
			}
			tp := p.TargetPort
			if tp == "" {
				tp = "0"
			}
			c.report(newMessage(PortNameIsNotUnderNamingConvention, s.Ref(), p.Name, int(p.Port), tp))
		}
	}
}

// inMesh is Istio's inMesh: a workload has a sidecar if it has an istio-proxy
// container with an image, or its label/annotation or namespace asks for injection.
func (c *context) inMesh(annos, labels map[string]string, ns string, containers []Container) bool {
	for _, ct := range containers {
		if ct.Name == "istio-proxy" {
			if ct.Image != "" {
				return true
			}
			break
		}
	}
	if v, ok := labels["sidecar.istio.io/inject"]; ok {
		return v == "true"
	}
	if v, ok := annos["sidecar.istio.io/inject"]; ok {
		return v == "true"
	}
	if n := c.namespace(ns); n != nil {
		return n.Labels["istio-injection"] == "enabled"
	}
	return false
}

// analyzeDeploymentServices: Services selecting one Deployment must not give
// one port different protocols (IST0116) nor map different ports to one
// targetPort (IST0137).
func analyzeDeploymentServices(c *context) {
	for _, d := range c.in.Deployments {
		if d.Labels["gateway.istio.io/managed"] == "istio.io-mesh-controller" ||
			!c.inMesh(d.TemplateAnnotations, d.TemplateLabels, d.Namespace, d.Containers) {
			continue
		}
		var svcs []*Service
		for _, s := range c.in.Services {
			if len(s.Selector) > 0 && selector(s.Selector).matches(d.TemplateLabels) && s.Namespace == d.Namespace {
				svcs = append(svcs, s)
			}
		}
		// port -> protocol -> service names
		ports := map[int32]map[string][]string{}
		var portOrder []int32
		targets := map[string]map[int32]string{}
		var targetOrder []string
		for _, s := range svcs {
			name := s.Namespace + "/" + s.Name
			for _, p := range s.Ports {
				if ports[p.Port] == nil {
					ports[p.Port] = map[string][]string{}
					portOrder = append(portOrder, p.Port)
				}
				ports[p.Port][p.Protocol] = append(ports[p.Port][p.Protocol], name)
				tp := p.TargetPort
				if tp == "" || tp == "0" {
					tp = strconv.Itoa(int(p.Port))
				}
				if targets[tp] == nil {
					targets[tp] = map[int32]string{}
					targetOrder = append(targetOrder, tp)
				}
				targets[tp][p.Port] = name
			}
		}
		for _, port := range portOrder {
			if len(ports[port]) < 2 {
				continue
			}
			var names []string
			for _, ns := range ports[port] {
				names = append(names, ns...)
			}
			sort.Strings(names)
			c.report(newMessage(DeploymentAssociatedToMultipleServices, d.Ref(), d.Name, int(port), names))
		}
		for _, tp := range targetOrder {
			if len(targets[tp]) < 2 {
				continue
			}
			var names []string
			var ps []int32
			for p, n := range targets[tp] {
				names = append(names, n)
				ps = append(ps, p)
			}
			sort.Strings(names)
			slices.Sort(ps)
			c.report(newMessage(DeploymentConflictingPorts, d.Ref(), d.Name, names, tp, ps))
		}
	}
}
