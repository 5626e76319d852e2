package inject

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mast-mesh/mast/internal/proxy/capture"
	"github.com/mast-mesh/mast/internal/proxyconfig"
)

// Paths inside the sidecar, and the volumes that provide them.
const (
	volumeToken  = "istio-token"    // projected service-account token, audience istio-ca
	volumeCACert = "istiod-ca-cert" // the istio-ca-root-cert ConfigMap
	tokenDir     = "/var/run/secrets/tokens"
	caCertDir    = "/var/run/secrets/istio"
	// TokenAudience is the audience of the projected token the CA checks
	// with TokenReview.
	TokenAudience = "istio-ca"
	// RootCertConfigMap is the ConfigMap mastd writes into every namespace.
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertKey       = "root-cert.pem"
	tokenLifetime     = 43200 // seconds, Istio's
)

// Result says what Pod did.
type Result struct {
	// Injected is false when the pod was left alone; Reason says why.
	Injected bool
	Reason   string
	// Warnings name annotations and fields that were set but are not
	// honoured; the webhook returns them to kubectl.
	Warnings []string
}

// Pod injects the sidecar into a pod's metadata and spec in place. namespace
// is the pod's; workload names its owner (Deployment, StatefulSet, ...), or
// is empty to use the pod's name. Errors name the annotation or field that
// cannot be honoured: such a pod is refused, never half injected.
func Pod(cfg *Config, namespace, workload string, meta *metav1.ObjectMeta, spec *corev1.PodSpec) (Result, error) {
	ok, reason := Required(cfg, namespace, metaView{Labels: meta.Labels, Annotations: meta.Annotations}, spec)
	if !ok {
		return Result{Reason: reason}, nil
	}
	ann := meta.Annotations
	res := Result{Injected: true, Reason: reason, Warnings: unknownAnnotations(ann)}
	if m, ok := ann[annotationInterceptionMode]; ok && m != "REDIRECT" {
		return Result{}, fmt.Errorf("annotation %s: %q: Mast's sidecar supports only REDIRECT", annotationInterceptionMode, m)
	}
	pc, warns, err := parseProxyConfig(ann[annotationProxyConfig])
	if err != nil {
		return Result{}, err
	}
	res.Warnings = append(res.Warnings, warns...)
	hold := cfg.HoldApplicationUntilProxyStarts
	if h := pc.GetHoldApplicationUntilProxyStarts(); h != nil {
		hold = h.GetValue()
	}
	if workload == "" {
		workload = meta.Name
	}

	initArgs, err := iptablesArgs(cfg, ann)
	if err != nil {
		return Result{}, err
	}
	rewrite := cfg.RewriteAppHTTPProbers
	if v, ok := ann[annotationRewriteProbers]; ok {
		b, valid := parseBool(v)
		if !valid {
			return Result{}, fmt.Errorf("annotation %s: %q is not a boolean", annotationRewriteProbers, v)
		}
		rewrite = b
	}
	var probers map[string]Prober
	if rewrite {
		if probers, err = rewriteProbes(spec); err != nil {
			return Result{}, err
		}
	}
	resources, err := proxyResources(cfg, ann)
	if err != nil {
		return Result{}, err
	}
	root := cfg.RootNamespace
	if root == "" {
		root = "istio-system"
	}
	eff := proxyconfig.Resolve(cfg.ProxyConfigs, root, namespace, meta.Labels)
	image := imageWithType(cfg.ProxyImage, eff.ImageType)
	if v := ann[annotationProxyImage]; v != "" {
		image = v
	}

	appNames := make([]string, 0, len(spec.Containers))
	for _, c := range spec.Containers {
		appNames = append(appNames, c.Name)
	}
	proxy, err := proxyContainer(cfg, proxyInput{
		image: image, namespace: namespace, workload: workload, labels: meta.Labels, annotations: ann,
		apps: appNames, probers: probers, pc: pc, drain: pc.GetTerminationDrainDuration().AsDuration(),
		hold: hold, resources: resources, proxyEnv: eff.Env, concurrency: eff.Concurrency,
	})
	if err != nil {
		return Result{}, err
	}
	init := corev1.Container{
		Name:            InitContainerName,
		Image:           image,
		ImagePullPolicy: corev1.PullPolicy(cfg.ImagePullPolicy),
		Args:            initArgs,
		Resources:       resources,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Privileged:               ptr(false),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
			ReadOnlyRootFilesystem: ptr(false),
			RunAsGroup:             ptr(int64(0)),
			RunAsNonRoot:           ptr(false),
			RunAsUser:              ptr(int64(0)),
		},
	}
	spec.InitContainers = append(spec.InitContainers, init)
	if hold {
		spec.Containers = append([]corev1.Container{proxy}, spec.Containers...)
	} else {
		spec.Containers = append(spec.Containers, proxy)
	}
	spec.Volumes = append(spec.Volumes,
		corev1.Volume{Name: volumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: TokenAudience, ExpirationSeconds: ptr(int64(tokenLifetime)), Path: volumeToken,
			}}},
		}}},
		corev1.Volume{Name: volumeCACert, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap},
		}}},
	)

	if meta.Labels == nil {
		meta.Labels = map[string]string{}
	}
	meta.Labels["security.istio.io/tlsMode"] = "istio"
	meta.Labels["service.istio.io/canonical-name"] = canonicalName(meta.Labels, workload)
	meta.Labels["service.istio.io/canonical-revision"] = canonicalRevision(meta.Labels)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
		ann = meta.Annotations
	}
	status, err := json.Marshal(statusAnnotation{
		InitContainers: []string{InitContainerName}, Containers: []string{ProxyContainerName},
		Volumes: []string{volumeToken, volumeCACert}, Revision: "default",
	})
	if err != nil {
		return Result{}, fmt.Errorf("status annotation: %w", err)
	}
	ann[AnnotationStatus] = string(status)
	if len(appNames) > 0 {
		if _, ok := ann["kubectl.kubernetes.io/default-container"]; !ok {
			ann["kubectl.kubernetes.io/default-container"] = appNames[0]
		}
		if _, ok := ann["kubectl.kubernetes.io/default-logs-container"]; !ok {
			ann["kubectl.kubernetes.io/default-logs-container"] = appNames[0]
		}
	}
	if ann["prometheus.io/scrape"] != "false" {
		ann["prometheus.io/scrape"] = "true"
		ann["prometheus.io/port"] = strconv.Itoa(StatusPort)
		ann["prometheus.io/path"] = "/stats/prometheus"
	}
	return res, nil
}

// statusAnnotation is the value of sidecar.istio.io/status (Istio's shape).
type statusAnnotation struct {
	InitContainers   []string `json:"initContainers"`
	Containers       []string `json:"containers"`
	Volumes          []string `json:"volumes"`
	ImagePullSecrets []string `json:"imagePullSecrets"`
	Revision         string   `json:"revision"`
}

// iptablesArgs builds `mast-proxy iptables` arguments from the
// traffic.sidecar.istio.io annotations, with istio-iptables' flags and
// Istio's defaults, and checks them with mast-proxy's own parser.
func iptablesArgs(cfg *Config, ann map[string]string) ([]string, error) {
	get := func(key, def string) string {
		if v, ok := ann[key]; ok {
			return strings.TrimSpace(v)
		}
		return def
	}
	exclIn := "15090,15021,15020"
	if v := get(annotationExcludeInboundPorts, cfg.ExcludeInboundPorts); v != "" {
		exclIn += "," + v
	}
	args := []string{"iptables",
		"-p", strconv.Itoa(capture.DefaultOutboundPort),
		"-z", strconv.Itoa(capture.DefaultInboundPort),
		"-u", strconv.Itoa(ProxyUID),
		"-m", "REDIRECT",
		"-i", get(annotationIncludeOutboundIPRanges, cfg.IncludeOutboundIPRanges),
		"-x", get(annotationExcludeOutboundIPRanges, cfg.ExcludeOutboundIPRanges),
		"-b", get(annotationIncludeInboundPorts, cfg.IncludeInboundPorts),
		"-d", exclIn,
	}
	if v := get(annotationIncludeOutboundPorts, ""); v != "" {
		args = append(args, "-q", v)
	}
	if v := get(annotationExcludeOutboundPorts, ""); v != "" {
		args = append(args, "-o", v)
	}
	if v := get(annotationExcludeInterfaces, ""); v != "" {
		args = append(args, "-c", v)
	}
	c, _, err := capture.ParseArgs(args[1:], io.Discard)
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("traffic.sidecar.istio.io annotations: %w", err)
	}
	return args, nil
}

// proxyResources are the sidecar's requests and limits: the values', or
// the sidecar.istio.io/proxy{CPU,Memory}[Limit] annotations'.
func proxyResources(cfg *Config, ann map[string]string) (corev1.ResourceRequirements, error) {
	var r corev1.ResourceRequirements
	for _, q := range []struct {
		key, def string
		name     corev1.ResourceName
		limit    bool
	}{
		{annotationProxyCPU, cfg.CPURequest, corev1.ResourceCPU, false},
		{annotationProxyMemory, cfg.MemoryRequest, corev1.ResourceMemory, false},
		{annotationProxyCPULimit, cfg.CPULimit, corev1.ResourceCPU, true},
		{annotationProxyMemoryLimit, cfg.MemoryLimit, corev1.ResourceMemory, true},
	} {
		v, ok := ann[q.key]
		if !ok {
			v = q.def
		}
		if v == "" {
			continue
		}
		qty, err := resource.ParseQuantity(v)
		if err != nil {
			what := "annotation " + q.key
			if !ok {
				what = "injection values"
			}
			return r, fmt.Errorf("%s: %q: %w", what, v, err)
		}
		m := &r.Requests
		if q.limit {
			m = &r.Limits
		}
		if *m == nil {
			*m = corev1.ResourceList{}
		}
		(*m)[q.name] = qty
	}
	return r, nil
}

type proxyInput struct {
	image, namespace, workload string
	labels, annotations        map[string]string
	apps                       []string
	probers                    map[string]Prober
	pc                         *meshv1alpha1.ProxyConfig
	drain                      time.Duration
	hold                       bool
	resources                  corev1.ResourceRequirements
	proxyEnv                   map[string]string // ProxyConfig environmentVariables
	concurrency                *int32            // ProxyConfig concurrency
}

// proxyContainer is the mast-proxy sidecar (Istio's istio-proxy).
func proxyContainer(cfg *Config, in proxyInput) (corev1.Container, error) {
	logLevel := cfg.LogLevel
	if v := in.annotations[annotationLogLevel]; v != "" {
		logLevel = v
	}
	switch logLevel {
	case "warning":
		logLevel = "warn"
	case "debug", "info", "warn", "error":
	default:
		return corev1.Container{}, fmt.Errorf("annotation %s: %q: want debug, info, warn or error", annotationLogLevel, logLevel)
	}
	args := []string{
		"--ca-addr", cfg.CAAddr,
		"--ca-root-file", caCertDir + "/" + RootCertKey,
		"--ca-server-name", cfg.CAServerName,
		"--token-file", tokenDir + "/" + volumeToken,
		"--trust-domain", cfg.TrustDomain,
		"--type", "sidecar",
		"--ip", "$(INSTANCE_IP)",
		"--name", "$(POD_NAME)",
		"--namespace", "$(POD_NAMESPACE)",
		"--service-account", "$(SERVICE_ACCOUNT)",
		"--dns-domain", "$(POD_NAMESPACE).svc." + cfg.DNSDomainSuffix,
		"--log-level", logLevel,
	}
	if d := in.drain; d > 0 {
		args = append(args, "--drain-period", d.String())
	}
	if len(in.labels) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(in.labels)) {
			kv = append(kv, k+"="+in.labels[k])
		}
		args = append(args, "--labels", strings.Join(kv, ","))
	}
	meta := map[string]string{
		"CLUSTER_ID":        cfg.ClusterID,
		"MESH_ID":           cfg.MeshID,
		"WORKLOAD_NAME":     in.workload,
		"INTERCEPTION_MODE": "REDIRECT",
		"APP_CONTAINERS":    strings.Join(in.apps, ","),
	}
	env := []corev1.EnvVar{
		fieldEnv("POD_NAME", "metadata.name"),
		fieldEnv("POD_NAMESPACE", "metadata.namespace"),
		fieldEnv("INSTANCE_IP", "status.podIP"),
		fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		fieldEnv("HOST_IP", "status.hostIP"),
	}
	pm := in.pc.GetProxyMetadata()
	for _, k := range slices.Sorted(maps.Keys(pm)) {
		env = append(env, corev1.EnvVar{Name: k, Value: pm[k]})
		if m, ok := strings.CutPrefix(k, "ISTIO_META_"); ok && m != "" {
			meta[m] = pm[k]
		}
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		if meta[k] != "" {
			args = append(args, "--meta", k+"="+meta[k])
		}
	}
	// concurrency is the proxy's worker parallelism: for mast-proxy, a Go
	// program, the runtime's GOMAXPROCS (read at start). 0 means every
	// core, as in Istio: GOMAXPROCS is then left to the runtime.
	// The annotation overrides the ProxyConfig resources.
	concurrency := in.concurrency
	if n := in.pc.GetConcurrency(); n != nil {
		v := n.GetValue()
		concurrency = &v
	}
	if concurrency != nil {
		if *concurrency < 0 {
			return corev1.Container{}, fmt.Errorf("concurrency %d: must not be negative", *concurrency)
		}
		if *concurrency > 0 {
			env = append(env, corev1.EnvVar{Name: "GOMAXPROCS", Value: strconv.Itoa(int(*concurrency))})
		}
	}
	// ProxyConfig environmentVariables: a name Mast sets already takes the
	// ProxyConfig's value in place (no duplicate names).
	for _, k := range slices.Sorted(maps.Keys(in.proxyEnv)) {
		i := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == k })
		if i < 0 {
			env = append(env, corev1.EnvVar{Name: k, Value: in.proxyEnv[k]})
			continue
		}
		env[i] = corev1.EnvVar{Name: k, Value: in.proxyEnv[k]}
	}
	if prom := prometheusAnnotations(in.annotations); prom != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_PROMETHEUS_ANNOTATIONS", Value: prom})
	}
	if len(in.probers) > 0 {
		s, err := marshalProbers(in.probers)
		if err != nil {
			return corev1.Container{}, err
		}
		env = append(env, corev1.EnvVar{Name: EnvAppProbers, Value: s})
	}
	ready := &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(StatusPort)}
	c := corev1.Container{
		Name:            ProxyContainerName,
		Image:           in.image,
		ImagePullPolicy: corev1.PullPolicy(cfg.ImagePullPolicy),
		Args:            args,
		Env:             env,
		Ports:           []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: StatsPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: ready},
			PeriodSeconds:    15,
			TimeoutSeconds:   3,
			FailureThreshold: 4,
		},
		StartupProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: ready.DeepCopy()},
			PeriodSeconds:    1,
			TimeoutSeconds:   3,
			FailureThreshold: 600,
		},
		Resources: in.resources,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Privileged:               ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			ReadOnlyRootFilesystem:   ptr(true),
			RunAsGroup:               ptr(int64(ProxyUID)),
			RunAsNonRoot:             ptr(true),
			RunAsUser:                ptr(int64(ProxyUID)),
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: volumeCACert, MountPath: caCertDir},
			{Name: volumeToken, MountPath: tokenDir},
		},
	}
	if in.hold {
		// The kubelet starts the next container only after postStart
		// returns: `mast-proxy wait` returns once the proxy is ready.
		c.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{
			Exec: &corev1.ExecAction{Command: []string{"mast-proxy", "wait"}},
		}}
	}
	return c, nil
}

// prometheusAnnotations keeps the application's own prometheus.io
// annotations for the sidecar, which scrapes and merges them (Istio's
// ISTIO_PROMETHEUS_ANNOTATIONS), before the pod's are pointed at the
// sidecar's merged endpoint.
func prometheusAnnotations(ann map[string]string) string {
	if ann["prometheus.io/scrape"] != "true" {
		return ""
	}
	m := map[string]string{}
	for _, k := range []string{"scrape", "path", "port", "scheme"} {
		if v, ok := ann["prometheus.io/"+k]; ok {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m) // a map of strings always encodes
	return string(b)
}

func canonicalName(labels map[string]string, workload string) string {
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return workload
}

func canonicalRevision(labels map[string]string) string {
	for _, k := range []string{"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"} {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return "latest"
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path},
	}}
}

func ptr[T any](v T) *T { return &v }
