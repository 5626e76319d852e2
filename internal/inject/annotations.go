package inject

import (
	"fmt"
	"slices"
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"

	"github.com/mast-mesh/mast/internal/proxyconfig"
)

// Istio's annotations that the injector reads.
const (
	annotationProxyConfig      = "proxy.istio.io/config"
	annotationInterceptionMode = "sidecar.istio.io/interceptionMode"
	annotationProxyImage       = "sidecar.istio.io/proxyImage"
	annotationProxyCPU         = "sidecar.istio.io/proxyCPU"
	annotationProxyMemory      = "sidecar.istio.io/proxyMemory"
	annotationProxyCPULimit    = "sidecar.istio.io/proxyCPULimit"
	annotationProxyMemoryLimit = "sidecar.istio.io/proxyMemoryLimit"
	annotationLogLevel         = "sidecar.istio.io/logLevel"
	annotationRewriteProbers   = "sidecar.istio.io/rewriteAppHTTPProbers"

	trafficPrefix                     = "traffic.sidecar.istio.io/"
	annotationIncludeOutboundIPRanges = trafficPrefix + "includeOutboundIPRanges"
	annotationExcludeOutboundIPRanges = trafficPrefix + "excludeOutboundIPRanges"
	annotationIncludeInboundPorts     = trafficPrefix + "includeInboundPorts"
	annotationExcludeInboundPorts     = trafficPrefix + "excludeInboundPorts"
	annotationIncludeOutboundPorts    = trafficPrefix + "includeOutboundPorts"
	annotationExcludeOutboundPorts    = trafficPrefix + "excludeOutboundPorts"
	annotationExcludeInterfaces       = trafficPrefix + "excludeInterfaces"
)

// understood lists every sidecar.istio.io/, traffic.sidecar.istio.io/ and
// proxy.istio.io/ annotation the injector honours; any other annotation
// under those prefixes gets a warning naming it.
var understood = []string{
	AnnotationInject, AnnotationStatus, annotationProxyConfig, annotationInterceptionMode,
	annotationProxyImage, annotationProxyCPU, annotationProxyMemory, annotationProxyCPULimit,
	annotationProxyMemoryLimit, annotationLogLevel, annotationRewriteProbers,
	annotationIncludeOutboundIPRanges, annotationExcludeOutboundIPRanges, annotationIncludeInboundPorts,
	annotationExcludeInboundPorts, annotationIncludeOutboundPorts, annotationExcludeOutboundPorts,
	annotationExcludeInterfaces,
}

// parseBool reads Istio's spellings of a boolean annotation or label.
func parseBool(v string) (b, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "y", "yes", "true", "on", "enabled":
		return true, true
	case "n", "no", "false", "off", "disabled":
		return false, true
	}
	return false, false
}

// Required says whether a pod in namespace is to be injected, and why. It
// follows Istio's injectRequired: host-network pods, ignored namespaces and
// pods that already carry the proxy are never injected; the
// sidecar.istio.io/inject label, then annotation, decides; without either
// the pod is injected (the webhook's namespace and object selectors have
// already limited the pods it sees, and kube-inject injects what it is
// given).
func Required(cfg *Config, namespace string, meta metaView, spec *corev1.PodSpec) (bool, string) {
	if spec.HostNetwork {
		return false, "pod uses the host network"
	}
	if slices.Contains(cfg.IgnoredNamespaces, namespace) {
		return false, "namespace " + namespace + " is never injected"
	}
	if _, ok := meta.Annotations[AnnotationStatus]; ok {
		return false, "pod is already injected (" + AnnotationStatus + ")"
	}
	for _, c := range spec.Containers {
		if c.Name == ProxyContainerName {
			return false, "pod already has a container named " + ProxyContainerName
		}
	}
	for _, src := range []struct {
		what string
		m    map[string]string
	}{{"label", meta.Labels}, {"annotation", meta.Annotations}} {
		if v, ok := src.m[AnnotationInject]; ok {
			b, valid := parseBool(v)
			switch {
			case !valid:
				return false, fmt.Sprintf("%s %s=%q is not a boolean; not injecting", src.what, AnnotationInject, v)
			case !b:
				return false, fmt.Sprintf("%s %s=%q", src.what, AnnotationInject, v)
			}
			return true, fmt.Sprintf("%s %s=%q", src.what, AnnotationInject, v)
		}
	}
	return true, "injection enabled for the namespace"
}

// NamespaceEnabled says whether a namespace's labels turn injection on:
// istio-injection=enabled or mast-injection=enabled. The webhook
// configuration's namespaceSelector expresses the same rule.
func NamespaceEnabled(labels map[string]string) bool {
	return labels[NamespaceLabel] == "enabled" || labels[MastNamespaceLabel] == "enabled"
}

// metaView is the part of a pod's metadata the injector reads.
type metaView struct {
	Labels, Annotations map[string]string
}

// proxyConfigHonoured are the ProxyConfig fields (proxy.istio.io/config)
// that change the injected pod; setting any other one is a warning.
var proxyConfigHonoured = []string{"concurrency", "holdApplicationUntilProxyStarts", "proxyMetadata", "terminationDrainDuration"}

// parseProxyConfig decodes proxy.istio.io/config (YAML or JSON of Istio's
// ProxyConfig). Unknown fields are errors; fields mast-proxy does not honour
// are warnings.
func parseProxyConfig(v string) (*meshv1alpha1.ProxyConfig, []string, error) {
	pc, err := proxyconfig.ParseAnnotation(v)
	if err != nil {
		return nil, nil, err
	}
	var warns []string
	for _, f := range proxyconfig.SetFields(pc) {
		if !slices.Contains(proxyConfigHonoured, f) {
			warns = append(warns, fmt.Sprintf("annotation %s: field %s is not honoured by Mast's sidecar", annotationProxyConfig, f))
		}
	}
	return pc, warns, nil
}

// unknownAnnotations warns about mesh annotations the injector does not
// honour, naming each.
func unknownAnnotations(ann map[string]string) []string {
	var warns []string
	for k := range ann {
		prefix := strings.HasPrefix(k, "sidecar.istio.io/") || strings.HasPrefix(k, trafficPrefix) ||
			strings.HasPrefix(k, "proxy.istio.io/") || strings.HasPrefix(k, "status.sidecar.istio.io/") ||
			strings.HasPrefix(k, "readiness.status.sidecar.istio.io/")
		if prefix && !slices.Contains(understood, k) {
			warns = append(warns, fmt.Sprintf("annotation %s is not honoured by Mast's sidecar injector", k))
		}
	}
	slices.Sort(warns)
	return warns
}
