package model

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// honouredMeshFields are the MeshConfig fields mastd reads (JSON names);
// any other field set in a mesh config file is reported as not honoured.
var honouredMeshFields = map[string]bool{
	"rootNamespace": true, "trustDomain": true, "pathNormalization": true, "extensionProviders": true,
	"accessLogFile": true, "accessLogEncoding": true, "accessLogFormat": true,
	"defaultProviders": true, "defaultConfig": true,
}

// honouredProxyConfig are the defaultConfig (ProxyConfig) fields mastd
// reads: tracing.sampling only.
func proxyConfigWarnings(file string, pc *meshconfig.ProxyConfig) []string {
	var out []string
	pc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.JSONName() != "tracing" {
			out = append(out, fmt.Sprintf("mesh config %s: defaultConfig.%s: not honoured by Mast", file, fd.JSONName()))
		}
		return true
	})
	pc.GetTracing().ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.JSONName() != "sampling" {
			out = append(out, fmt.Sprintf("mesh config %s: defaultConfig.tracing.%s: not honoured by Mast (use extensionProviders and defaultProviders.tracing)", file, fd.JSONName()))
		}
		return true
	})
	return out
}

// LoadMeshConfigFile reads Istio's MeshConfig (YAML or JSON, the `mesh` key
// of the istio ConfigMap) from path on top of base. It returns warnings
// naming the fields that are set but not honoured.
func LoadMeshConfigFile(path string, base MeshConfig) (MeshConfig, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return base, nil, fmt.Errorf("mesh config: %w", err)
	}
	return ParseMeshConfig(path, data, base)
}

// ParseMeshConfig is LoadMeshConfigFile on data read from file.
func ParseMeshConfig(file string, data []byte, base MeshConfig) (MeshConfig, []string, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return base, nil, fmt.Errorf("mesh config %s: %w", file, err)
	}
	if doc == nil {
		return base, nil, nil
	}
	mixer, err := takeMixerFields(file, doc)
	if err != nil {
		return base, nil, err
	}
	networks, netWarnings, err := takeMeshNetworks(file, doc)
	if err != nil {
		return base, nil, err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return base, nil, fmt.Errorf("mesh config %s: %w", file, err)
	}
	var mc meshconfig.MeshConfig
	if err := protojson.Unmarshal(js, &mc); err != nil {
		return base, nil, fmt.Errorf("mesh config %s: %w", file, err)
	}
	out := base
	if mc.GetRootNamespace() != "" {
		out.RootNamespace = mc.GetRootNamespace()
	}
	if mc.GetTrustDomain() != "" {
		out.TrustDomain = mc.GetTrustDomain()
	}
	out.PathNormalization = mc.GetPathNormalization().GetNormalization()
	out.ExtensionProviders = mc.GetExtensionProviders()
	out.AccessLogFile = mc.GetAccessLogFile()
	out.AccessLogFormat = mc.GetAccessLogFormat()
	out.AccessLogEncoding = mc.GetAccessLogEncoding().String()
	out.DefaultTracingProviders = mc.GetDefaultProviders().GetTracing()
	out.DefaultAccessLogProviders = mc.GetDefaultProviders().GetAccessLogging()
	if t := mc.GetDefaultConfig().GetTracing(); t != nil && t.GetSampling() != 0 {
		out.TracingSampling, out.TracingSamplingSet = t.GetSampling(), true
	}
	if v, ok := mixer["disablePolicyChecks"].(bool); ok {
		out.DisablePolicyChecks = v
	}
	if v, ok := mixer["policyCheckFailOpen"].(bool); ok {
		out.PolicyCheckFailOpen = v
	}
	if v, ok := mixer["mixerCheckServer"].(string); ok {
		out.MixerCheckServer = v
	}
	if v, ok := mixer["mixerReportServer"].(string); ok {
		out.MixerReportServer = v
	}
	if networks != nil {
		out.MeshNetworks = networks
	}
	warnings := netWarnings
	if mc.GetDefaultConfig() != nil {
		warnings = append(warnings, proxyConfigWarnings(file, mc.GetDefaultConfig())...)
	}
	if m := mc.GetDefaultProviders().GetMetrics(); len(m) > 0 {
		warnings = append(warnings, fmt.Sprintf("mesh config %s: defaultProviders.metrics: not honoured by Mast (every proxy serves Istio's standard metrics)", file))
	}
	mc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !honouredMeshFields[fd.JSONName()] {
			warnings = append(warnings, fmt.Sprintf("mesh config %s: %s: not honoured by Mast", file, fd.JSONName()))
		}
		return true
	})
	sort.Strings(warnings)
	return out, warnings, nil
}

// takeMeshNetworks reads and removes doc's meshNetworks: Istio's
// MeshNetworks, a sibling of the mesh key in the istio ConfigMap, accepted
// in the mesh config file as a mapping or (as in the ConfigMap) a YAML
// string. nil when absent.
func takeMeshNetworks(file string, doc any) (*meshconfig.MeshNetworks, []string, error) {
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, nil, nil
	}
	v, ok := m["meshNetworks"]
	if !ok {
		return nil, nil, nil
	}
	delete(m, "meshNetworks")
	return ParseMeshNetworks(file, v)
}

// ParseMeshNetworks decodes and validates Istio's MeshNetworks from a
// decoded YAML value (a mapping, or a string holding YAML), naming file and
// field in errors and warnings.
func ParseMeshNetworks(file string, v any) (*meshconfig.MeshNetworks, []string, error) {
	if s, ok := v.(string); ok {
		if err := yaml.Unmarshal([]byte(s), &v); err != nil {
			return nil, nil, fmt.Errorf("mesh config %s: meshNetworks: %w", file, err)
		}
	}
	if v == nil {
		return nil, nil, nil
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, nil, fmt.Errorf("mesh config %s: meshNetworks: want a mapping with networks", file)
	}
	js, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("mesh config %s: meshNetworks: %w", file, err)
	}
	var mn meshconfig.MeshNetworks
	if err := protojson.Unmarshal(js, &mn); err != nil {
		return nil, nil, fmt.Errorf("mesh config %s: meshNetworks: %w", file, err)
	}
	errs, warnings := ValidateMeshNetworks(&mn)
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("mesh config %s: %s", file, strings.Join(errs, "; "))
	}
	for i, w := range warnings {
		warnings[i] = "mesh config " + file + ": " + w
	}
	return &mn, warnings, nil
}

// mixerMeshFields are Istio 1.4's Mixer fields of MeshConfig, gone from
// istio.io/api's MeshConfig: they are read here, before the rest is
// decoded, and removed from doc.
var mixerMeshFields = map[string]string{"disablePolicyChecks": "bool", "policyCheckFailOpen": "bool", "mixerCheckServer": "string", "mixerReportServer": "string"}

func takeMixerFields(file string, doc any) (map[string]any, error) {
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, nil
	}
	out := map[string]any{}
	for k, typ := range mixerMeshFields {
		v, ok := m[k]
		if !ok {
			continue
		}
		delete(m, k)
		switch typ {
		case "bool":
			if _, ok := v.(bool); !ok {
				return nil, fmt.Errorf("mesh config %s: %s: want true or false", file, k)
			}
		case "string":
			if _, ok := v.(string); !ok {
				return nil, fmt.Errorf("mesh config %s: %s: want a host:port string", file, k)
			}
		}
		out[k] = v
	}
	return out, nil
}
