package inject

import (
	"strings"

	"github.com/mast-mesh/mast/internal/proxyconfig"
)

// ProxyConfigRule is one ProxyConfig resource (networking.istio.io/v1beta1).
type ProxyConfigRule = proxyconfig.Rule

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
