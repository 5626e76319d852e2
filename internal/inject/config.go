// Package inject adds Mast's sidecar to Kubernetes pods the way Istio's
// sidecar injector does: the decision (namespace labels, the
// sidecar.istio.io/inject annotation or label, host networking, pods already
// injected), an init container running `mast-proxy iptables` with
// istio-iptables' arguments from the traffic.sidecar.istio.io/* annotations,
// the mast-proxy container (Istio's name istio-proxy, its volumes, its
// environment, its readiness probe), the application probes rewritten to the
// proxy's /app-health/ endpoints, and proxy.istio.io/config.
//
// Everything here is a pure function of the pod and a Config: the admission
// webhook in mastd and `mast kube-inject` produce the same pod. The package
// imports Kubernetes API types but no client library.
package inject

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"
)

// Istio's names, kept so that kubectl habits and tools carry over.
const (
	ProxyContainerName = "istio-proxy"
	InitContainerName  = "istio-init"

	// AnnotationStatus marks an injected pod (and says what was added).
	AnnotationStatus = "sidecar.istio.io/status"
	// AnnotationInject (or the label of the same name) turns injection on
	// or off for one pod.
	AnnotationInject = "sidecar.istio.io/inject"

	// NamespaceLabel is Istio's namespace switch; MastNamespaceLabel is
	// Mast's own, with the same values ("enabled", "disabled").
	NamespaceLabel     = "istio-injection"
	MastNamespaceLabel = "mast-injection"
)

// Proxy ports (Istio's).
const (
	StatusPort    = 15020 // merged metrics, /healthz/ready, /app-health/
	StatsPort     = 15090
	ReadinessPort = 15021
	ProxyUID      = 1337
)

// Config is the injection template's values: what `mast install --set`
// and the istio-sidecar-injector ConfigMap configure. The zero value is not
// useful; start from DefaultConfig.
type Config struct {
	// ProxyConfigs are the mesh's ProxyConfig resources and RootNamespace
	// the namespace whose ProxyConfig applies mesh-wide ("istio-system"
	// when empty); set per request by the webhook, not from the values.
	ProxyConfigs  []ProxyConfigRule `json:"-"`
	RootNamespace string            `json:"-"`
	// ProxyImage runs both the init container and the sidecar.
	ProxyImage      string `json:"proxyImage"`
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`
	// CAAddr is mastd's xDS + CA address (Istio's CA_ADDR).
	CAAddr string `json:"caAddr"`
	// CAServerName is the name in mastd's serving certificate.
	CAServerName string `json:"caServerName"`
	TrustDomain  string `json:"trustDomain"`
	ClusterID    string `json:"clusterID"`
	MeshID       string `json:"meshID"`
	// DNSDomainSuffix is the cluster's DNS suffix (cluster.local).
	DNSDomainSuffix string `json:"dnsDomainSuffix"`
	// HoldApplicationUntilProxyStarts is the mesh-wide default of
	// ProxyConfig.holdApplicationUntilProxyStarts.
	HoldApplicationUntilProxyStarts bool `json:"holdApplicationUntilProxyStarts"`
	// RewriteAppHTTPProbers rewrites application probes to the proxy
	// (Istio's sidecarInjectorWebhook.rewriteAppHTTPProbe, on by default).
	RewriteAppHTTPProbers bool `json:"rewriteAppHTTPProbers"`
	// IncludeOutboundIPRanges, ExcludeOutboundIPRanges,
	// IncludeInboundPorts, ExcludeInboundPorts are the defaults of the
	// traffic.sidecar.istio.io annotations of the same names.
	IncludeOutboundIPRanges string `json:"includeOutboundIPRanges"`
	ExcludeOutboundIPRanges string `json:"excludeOutboundIPRanges"`
	IncludeInboundPorts     string `json:"includeInboundPorts"`
	ExcludeInboundPorts     string `json:"excludeInboundPorts"`
	// LogLevel is mast-proxy's --log-level (debug, info, warn, error).
	LogLevel string `json:"logLevel"`
	// Resources of the sidecar (Kubernetes quantities; empty: none).
	CPURequest    string `json:"cpuRequest"`
	MemoryRequest string `json:"memoryRequest"`
	CPULimit      string `json:"cpuLimit"`
	MemoryLimit   string `json:"memoryLimit"`
	// IgnoredNamespaces are never injected.
	IgnoredNamespaces []string `json:"ignoredNamespaces"`
}

// DefaultConfig returns Istio's defaults with Mast's image and service.
func DefaultConfig() Config {
	return Config{
		ProxyImage:              "ghcr.io/mast-mesh/mast-proxy:latest",
		ImagePullPolicy:         "IfNotPresent",
		CAAddr:                  "istiod.istio-system.svc:15012",
		CAServerName:            "istiod.istio-system.svc",
		TrustDomain:             "cluster.local",
		ClusterID:               "Kubernetes",
		MeshID:                  "cluster.local",
		DNSDomainSuffix:         "cluster.local",
		RewriteAppHTTPProbers:   true,
		IncludeOutboundIPRanges: "*",
		IncludeInboundPorts:     "*",
		LogLevel:                "warn",
		CPURequest:              "100m",
		MemoryRequest:           "128Mi",
		CPULimit:                "2000m",
		MemoryLimit:             "1024Mi",
		IgnoredNamespaces:       []string{"kube-system", "kube-public", "kube-node-lease", "local-path-storage"},
	}
}

// ParseConfig reads a values document (YAML or JSON) over DefaultConfig.
// Unknown fields are errors naming the field.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("injection values: %w", err)
	}
	if c.ProxyImage == "" {
		return Config{}, fmt.Errorf("injection values: proxyImage: empty")
	}
	if c.CAAddr == "" {
		return Config{}, fmt.Errorf("injection values: caAddr: empty")
	}
	return c, nil
}
