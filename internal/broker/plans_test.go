package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadFileConfig(t *testing.T) {
	cases := []struct {
		name, yaml, err string
	}{
		{"ok", `
plans:
- name: gold
  description: Gold
  free: false
  plan_updateable: true
  certificate_ttl: 30m
  maintenance_info: {version: 1.2.3-rc.1+build.5}
  schemas:
    service_instance:
      create:
        parameters: {type: object, properties: {namespace: {type: string}}}
`, ""},
		{"unknown field", "plans:\n- name: a\n  description: b\n  colour: red\n", "colour"},
		{"bad name", "plans:\n- name: 'a b'\n  description: b\n", "CLI-friendly"},
		{"duplicate", "plans:\n- {name: a, description: b}\n- {name: a, description: c}\n", "twice"},
		{"no description", "plans:\n- {name: a}\n", "description"},
		{"bad ttl", "plans:\n- {name: a, description: b, certificate_ttl: soon}\n", "soon"},
		{"bad semver", "plans:\n- {name: a, description: b, maintenance_info: {version: '1.0'}}\n", "semantic version"},
		{"external ref", "plans:\n- name: a\n  description: b\n  schemas: {service_binding: {create: {parameters: {$ref: 'http://example.com/s.json'}}}}\n", "service_binding.create"},
		{"bad schema", "plans:\n- name: a\n  description: b\n  schemas: {service_binding: {create: {parameters: {type: 5}}}}\n", "service_binding.create"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "broker.yaml")
			os.WriteFile(path, []byte(c.yaml), 0o644)
			fc, err := LoadFileConfig(path)
			if c.err == "" {
				if err != nil || len(fc.Plans) != 1 {
					t.Fatalf("%v %+v", err, fc)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want one naming %q", err, c.err)
			}
		})
	}
}
