package analyze

import (
	"encoding/json"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// jsonMessage is istioctl analyze's JSON shape (code, level, message,
// origin, reference, documentationUrl) plus the resource's kind, namespace
// and name as separate fields.
type jsonMessage struct {
	Code             string       `json:"code" yaml:"code"`
	DocumentationURL string       `json:"documentationUrl" yaml:"documentationUrl"`
	Level            string       `json:"level" yaml:"level"`
	Message          string       `json:"message" yaml:"message"`
	Origin           string       `json:"origin" yaml:"origin"`
	Reference        string       `json:"reference,omitempty" yaml:"reference,omitempty"`
	Resource         jsonResource `json:"resource" yaml:"resource"`
}

type jsonResource struct {
	Kind      string `json:"kind" yaml:"kind"`
	Namespace string `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Name      string `json:"name" yaml:"name"`
}

func structured(msgs []Message) []jsonMessage {
	out := make([]jsonMessage, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, jsonMessage{Code: m.Type.Code, DocumentationURL: m.DocumentationURL(), Level: m.Type.Level.String(),
			Message: m.Text, Origin: m.Resource.FriendlyName(), Reference: m.Resource.Reference(),
			Resource: jsonResource{Kind: m.Resource.Kind, Namespace: m.Resource.Namespace, Name: m.Resource.Name}})
	}
	return out
}

// Write prints msgs in format "log" (istioctl's lines), "json" or "yaml".
func Write(w io.Writer, format string, msgs []Message) error {
	switch format {
	case "", "log":
		for _, m := range msgs {
			fmt.Fprintln(w, m.String())
		}
		return nil
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "\t")
		return enc.Encode(structured(msgs))
	case "yaml":
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		return enc.Encode(structured(msgs))
	}
	return fmt.Errorf("unknown output format %q (want log, json or yaml)", format)
}
