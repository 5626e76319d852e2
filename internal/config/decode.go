package config

// TEMPORARY minimal decoder so that other packages compile; the config work
// replaces it with the full decoder (line numbers, field paths, all kinds).

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"
)

// Decode parses every document in data (YAML or JSON, multi-document) read from file.
func Decode(file string, data []byte) ([]Resource, error) {
	var out []Resource
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		var obj struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string            `json:"name"`
				Namespace string            `json:"namespace"`
				Labels    map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec any `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if obj.Kind == "" {
			continue
		}
		var spec proto.Message
		var kind Kind
		switch obj.Kind {
		case "VirtualService":
			spec, kind = &networking.VirtualService{}, VirtualService
		case "DestinationRule":
			spec, kind = &networking.DestinationRule{}, DestinationRule
		case "Gateway":
			spec, kind = &networking.Gateway{}, Gateway
		case "ServiceEntry":
			spec, kind = &networking.ServiceEntry{}, ServiceEntry
		case "WorkloadEntry":
			spec, kind = &networking.WorkloadEntry{}, WorkloadEntry
		default:
			return nil, fmt.Errorf("%s: unknown kind %q", file, obj.Kind)
		}
		js, _ := yaml.Marshal(obj.Spec)
		js, err := yaml.YAMLToJSON(js)
		if err != nil {
			return nil, err
		}
		if err := protojson.Unmarshal(js, spec); err != nil {
			return nil, fmt.Errorf("%s: %s/%s: %w", file, obj.Kind, obj.Metadata.Name, err)
		}
		ns := obj.Metadata.Namespace
		if ns == "" {
			ns = "default"
		}
		out = append(out, Resource{Meta: Meta{Kind: kind, APIVersion: obj.APIVersion, Name: obj.Metadata.Name, Namespace: ns, Labels: obj.Metadata.Labels, Source: Source{File: file}}, Spec: spec})
	}
	return out, nil
}

// Validate checks one resource. TEMPORARY: the config work fills this in.
func Validate(r Resource) (warnings, errs []error) { return nil, nil }
