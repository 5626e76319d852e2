package model

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

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
	var warnings []string
	mc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !honouredMeshFields[fd.JSONName()] {
			warnings = append(warnings, fmt.Sprintf("mesh config %s: %s: not honoured by Mast", file, fd.JSONName()))
		}
		return true
	})
	sort.Strings(warnings)
	return out, warnings, nil
}
