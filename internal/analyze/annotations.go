package analyze

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"istio.io/api/annotation"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// ignoredAnnotations are set by Istio itself; never reported.
var ignoredAnnotations = map[string]bool{
	annotation.SidecarStatus.Name:            true,
	annotation.GatewayControllerVersion.Name: true,
	annotation.IoIstioRev.Name:               true,
}

// analyzeAnnotations: Istio annotations on Namespaces, Services, Pods and
// Deployments must exist (IST0108), not be deprecated (IST0135) and sit on a
// kind they apply to (IST0107).
func analyzeAnnotations(c *context) {
	all := annotation.AllResourceAnnotations()
	check := func(o *Object, kind string) {
		for _, ann := range sortedKeys(o.Annotations) {
			if !istioAnnotation(ann) || ignoredAnnotations[ann] {
				continue
			}
			var def *annotation.Instance
			for _, a := range all {
				if a.Name == ann {
					def = a
					break
				}
			}
			if def == nil {
				c.report(newMessage(UnknownAnnotation, o.Ref(), ann))
				continue
			}
			if def.Deprecated {
				if _, f := o.Labels["sidecar.istio.io/inject"]; !(f && ann == annotation.SidecarInject.Name) {
					extra := ""
					if ann == annotation.SidecarInject.Name {
						extra = ` in favor of the "sidecar.istio.io/inject" label`
					}
					c.report(newMessage(DeprecatedAnnotation, o.Ref(), ann, extra))
				}
			}
			var attachesTo []string
			anyKind := false
			for _, rt := range def.Resources {
				if rt == annotation.Any {
					anyKind = true
				}
				if s := rt.String(); s != "Unknown" {
					attachesTo = append(attachesTo, s)
				}
			}
			if anyKind {
				continue
			}
			if !slices.Contains(attachesTo, kind) {
				c.report(newMessage(MisplacedAnnotation, o.Ref(), ann, strings.Join(attachesTo, ", ")))
				continue
			}
			if err := validateAnnotation(ann, o.Annotations[ann]); err != nil {
				c.report(newMessage(InvalidAnnotation, o.Ref(), ann, err.Error()))
			}
		}
	}
	for _, n := range c.in.Namespaces {
		check(n, "Namespace")
	}
	for _, s := range c.in.Services {
		check(&s.Object, "Service")
	}
	for _, p := range c.in.Pods {
		check(&p.Object, "Pod")
	}
	for _, d := range c.in.Deployments {
		check(&d.Object, "Deployment")
	}
}

func istioAnnotation(ann string) bool {
	if ann == "kubernetes.io/ingress.class" {
		return true
	}
	domain, _, _ := strings.Cut(ann, "/")
	return strings.HasSuffix(domain, "istio.io")
}

// validateAnnotation checks the value of an injection annotation as Istio's
// injector does (pkg/kube/inject's AnnotationValidation); other annotations
// are not checked.
func validateAnnotation(name, value string) error {
	switch name {
	case annotation.SidecarInterceptionMode.Name:
		switch value {
		case "REDIRECT", "TPROXY", "NONE":
			return nil
		}
		return fmt.Errorf("interceptionMode invalid, use REDIRECT,TPROXY,NONE: %v", value)
	case annotation.SidecarStatusPort.Name:
		if _, err := parseAnnotationPort(value); err != nil {
			return fmt.Errorf("excludeInboundPorts invalid: %v", err)
		}
	case annotation.SidecarStatusReadinessInitialDelaySeconds.Name, annotation.SidecarStatusReadinessPeriodSeconds.Name,
		annotation.SidecarStatusReadinessFailureThreshold.Name:
		_, err := strconv.ParseUint(value, 10, 32)
		return err
	case annotation.SidecarTrafficIncludeOutboundIPRanges.Name:
		if value != "*" {
			if err := validateCIDRList(value); err != nil {
				return fmt.Errorf("includeIPRanges invalid: %v", err)
			}
		}
	case annotation.SidecarTrafficExcludeOutboundIPRanges.Name:
		if err := validateCIDRList(value); err != nil {
			return fmt.Errorf("excludeIPRanges invalid: %v", err)
		}
	case annotation.SidecarTrafficIncludeInboundPorts.Name:
		if value != "*" {
			return validatePortList("includeInboundPorts", value)
		}
	case annotation.SidecarTrafficExcludeInboundPorts.Name:
		return validatePortList("excludeInboundPorts", value)
	case annotation.SidecarTrafficExcludeOutboundPorts.Name:
		return validatePortList("excludeOutboundPorts", value)
	case annotation.SidecarTrafficExcludeInterfaces.Name, annotation.SidecarTrafficKubevirtInterfaces.Name,
		annotation.IoIstioRerouteVirtualInterfaces.Name:
		return validateInterfaceNames(value)
	case annotation.PrometheusMergeMetrics.Name:
		_, err := strconv.ParseBool(value)
		return err
	case annotation.ProxyConfig.Name:
		if _, err := proxyConfigAnnotation(value); err != nil {
			return fmt.Errorf("failed to convert to apply proxy config: %v", err)
		}
	case annotation.SidecarProxyCPU.Name, annotation.SidecarProxyMemory.Name, annotation.SidecarProxyCPULimit.Name,
		annotation.SidecarProxyMemoryLimit.Name:
		if strings.IndexFunc(value, unicode.IsControl) >= 0 {
			return fmt.Errorf("value contains control characters")
		}
		_, err := resource.ParseQuantity(value)
		return err
	}
	return nil
}

// proxyConfigAnnotation decodes the YAML of a proxy.istio.io/config annotation.
func proxyConfigAnnotation(value string) (*meshconfig.ProxyConfig, error) {
	j, err := yaml.YAMLToJSON([]byte(value))
	if err != nil {
		return nil, err
	}
	pc := &meshconfig.ProxyConfig{}
	if err := protojson.Unmarshal(j, pc); err != nil {
		return nil, err
	}
	return pc, nil
}

func validateCIDRList(cidrs string) error {
	if cidrs == "" {
		return nil
	}
	for _, cidr := range strings.Split(cidrs, ",") {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return fmt.Errorf("failed parsing cidr '%s': %v", cidr, err)
		}
	}
	return nil
}

func parseAnnotationPort(s string) (int, error) {
	port, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("failed parsing port '%s': %v", s, err)
	}
	return int(port), nil
}

func validatePortList(param, ports string) error {
	ports = strings.TrimSpace(ports)
	if ports == "" {
		return nil
	}
	for _, p := range strings.Split(ports, ",") {
		if _, err := parseAnnotationPort(p); err != nil {
			return fmt.Errorf("%s invalid: failed parsing port '%s': %v", param, p, err)
		}
	}
	return nil
}

var interfaceName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.\-]*$`)

func validateInterfaceNames(names string) error {
	if names == "" {
		return nil
	}
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
			return fmt.Errorf("empty interface name")
		case len(n) > 15:
			return fmt.Errorf("interface name %q too long (max 15 chars)", n)
		case !interfaceName.MatchString(n):
			return fmt.Errorf("interface name %q contains invalid characters", n)
		}
	}
	return nil
}
