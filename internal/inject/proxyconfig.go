package inject

import (
	"maps"
	"slices"
	"strings"

	networkingbeta "istio.io/api/networking/v1beta1"
)

// ProxyConfigRule is one ProxyConfig resource (networking.istio.io/v1beta1).
type ProxyConfigRule struct {
	Namespace string
	Name      string
	Spec      *networkingbeta.ProxyConfig
}

// effectiveProxyConfig is what the ProxyConfigs say for a pod, with
// Istio's precedence: the root namespace's (mesh-wide), then the pod
// namespace's without a selector, then those in the pod's namespace whose
// selector matches its labels; a later one overrides the fields it sets,
// environment variables one by one. Rules are taken in namespace/name order.
type effectiveProxyConfig struct {
	concurrency *int32
	env         map[string]string
	imageType   string
}

func resolveProxyConfig(rules []ProxyConfigRule, root, namespace string, labels map[string]string) effectiveProxyConfig {
	sorted := slices.SortedFunc(slices.Values(rules), func(a, b ProxyConfigRule) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	var out effectiveProxyConfig
	apply := func(s *networkingbeta.ProxyConfig) {
		if c := s.GetConcurrency(); c != nil {
			v := c.GetValue()
			out.concurrency = &v
		}
		if len(s.GetEnvironmentVariables()) > 0 && out.env == nil {
			out.env = map[string]string{}
		}
		maps.Copy(out.env, s.GetEnvironmentVariables())
		if t := s.GetImage().GetImageType(); t != "" {
			out.imageType = t
		}
	}
	for _, level := range []func(ProxyConfigRule) bool{
		func(r ProxyConfigRule) bool { return r.Namespace == root && r.Spec.GetSelector() == nil },
		func(r ProxyConfigRule) bool {
			return r.Namespace == namespace && namespace != root && r.Spec.GetSelector() == nil
		},
		func(r ProxyConfigRule) bool {
			if r.Namespace != namespace || r.Spec.GetSelector() == nil {
				return false
			}
			for k, v := range r.Spec.GetSelector().GetMatchLabels() {
				if labels[k] != v {
					return false
				}
			}
			return true
		},
	} {
		for _, r := range sorted {
			if level(r) {
				apply(r.Spec)
			}
		}
	}
	return out
}

// imageWithType applies ProxyConfig image.imageType as Istio does: "default"
// (or none) keeps the image; another type ("distroless", "debug") is a tag
// suffix, hub/mast-proxy:TAG-TYPE.
func imageWithType(image, imageType string) string {
	if imageType == "" || imageType == "default" {
		return image
	}
	slash := strings.LastIndexByte(image, '/')
	if i := strings.LastIndexByte(image, ':'); i > slash {
		return image + "-" + imageType
	}
	return image + ":latest-" + imageType
}
