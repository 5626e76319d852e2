// Package proxyconfig resolves Istio's ProxyConfig resources
// (networking.istio.io/v1beta1) for one workload with Istio's precedence,
// for whoever starts its proxy: the Kubernetes sidecar injector and the
// local mesh (`mast up`).
package proxyconfig

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingbeta "istio.io/api/networking/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/mast-mesh/mast/internal/config"
)

// Annotation is the pod (or, in the local mesh, WorkloadEntry) annotation
// holding a mesh ProxyConfig that overrides the resources.
const Annotation = "proxy.istio.io/config"

// Rule is one ProxyConfig resource.
type Rule struct {
	Namespace string
	Name      string
	Spec      *networkingbeta.ProxyConfig
}

// Rules are the ProxyConfig resources among rs.
func Rules(rs []config.Resource) []Rule {
	var out []Rule
	for _, r := range rs {
		if spec, ok := r.Spec.(*networkingbeta.ProxyConfig); ok && r.Kind == config.ProxyConfig {
			out = append(out, Rule{Namespace: r.Namespace, Name: r.Name, Spec: spec})
		}
	}
	return out
}

// Effective is what the ProxyConfigs say for one workload.
type Effective struct {
	// Concurrency is the proxy's worker parallelism, nil when unset; 0
	// means every core.
	Concurrency *int32
	// Env are environmentVariables for the proxy process.
	Env map[string]string
	// ImageType is image.imageType ("" when unset).
	ImageType string
}

// Resolve applies Istio's precedence: the root namespace's ProxyConfigs
// (mesh-wide), then the workload namespace's without a selector, then those
// in its namespace whose selector matches its labels; a later one overrides
// the fields it sets, environment variables one by one. Rules of one level
// are taken in namespace/name order. The annotation, applied by the caller,
// comes last.
func Resolve(rules []Rule, root, namespace string, labels map[string]string) Effective {
	sorted := slices.SortedFunc(slices.Values(rules), func(a, b Rule) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	var out Effective
	apply := func(s *networkingbeta.ProxyConfig) {
		if c := s.GetConcurrency(); c != nil {
			v := c.GetValue()
			out.Concurrency = &v
		}
		if len(s.GetEnvironmentVariables()) > 0 && out.Env == nil {
			out.Env = map[string]string{}
		}
		maps.Copy(out.Env, s.GetEnvironmentVariables())
		if t := s.GetImage().GetImageType(); t != "" {
			out.ImageType = t
		}
	}
	for _, level := range []func(Rule) bool{
		func(r Rule) bool { return r.Namespace == root && r.Spec.GetSelector() == nil },
		func(r Rule) bool {
			return r.Namespace == namespace && namespace != root && r.Spec.GetSelector() == nil
		},
		func(r Rule) bool {
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

// ParseAnnotation decodes proxy.istio.io/config (YAML or JSON of Istio's
// mesh ProxyConfig); unknown fields are errors.
func ParseAnnotation(v string) (*meshv1alpha1.ProxyConfig, error) {
	js, err := yaml.YAMLToJSON([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	pc := &meshv1alpha1.ProxyConfig{}
	if s := strings.TrimSpace(string(js)); s != "null" && s != "" {
		if err := protojson.Unmarshal(js, pc); err != nil {
			return nil, fmt.Errorf("annotation %s: %w", Annotation, err)
		}
	}
	return pc, nil
}

// SetFields are the JSON names of the fields set in pc, in order.
func SetFields(pc *meshv1alpha1.ProxyConfig) []string {
	var out []string
	pc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		out = append(out, fd.JSONName())
		return true
	})
	slices.Sort(out)
	return out
}

// ProcessEnv is the environment of a mast-proxy process for e:
// environmentVariables, and concurrency as GOMAXPROCS (mast-proxy is a Go
// program: its worker parallelism is the runtime's GOMAXPROCS; 0 leaves it
// to the runtime, every core, as Istio's 0 does). Sorted by name; a
// negative concurrency is an error.
func (e Effective) ProcessEnv() ([]string, error) {
	env := maps.Clone(e.Env)
	if e.Concurrency != nil {
		if *e.Concurrency < 0 {
			return nil, fmt.Errorf("concurrency %d: must not be negative", *e.Concurrency)
		}
		if *e.Concurrency > 0 {
			if env == nil {
				env = map[string]string{}
			}
			env["GOMAXPROCS"] = strconv.Itoa(int(*e.Concurrency))
		}
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}
