package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// draft04 is the JSON Schema version Mast's own schemas declare; every
// platform must support it.
const draft04 = "http://json-schema.org/draft-04/schema#"

// maxSchemaBytes is the specification's limit on one schema.
const maxSchemaBytes = 64 << 10

// The schemas of the parameters Mast reads, used for a plan whose
// configuration gives none.
var (
	defaultInstanceCreate = map[string]any{
		"$schema": draft04, "type": "object", "additionalProperties": false,
		"properties": map[string]any{
			"namespace": map[string]any{
				"description": "Namespace of the identities this instance's bindings issue (spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/...); defaults to context.namespace, else \"osb\".",
				"type":        "string", "pattern": `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, "maxLength": 63,
			},
		},
	}
	defaultInstanceUpdate = map[string]any{
		"$schema": draft04, "type": "object", "additionalProperties": false, "properties": map[string]any{},
	}
	defaultBindingCreate = map[string]any{
		"$schema": draft04, "type": "object", "additionalProperties": false,
		"properties": map[string]any{
			"client_certificate": map[string]any{
				"description": "Issue a client certificate from the mesh CA for a consumer outside the mesh (default true).",
				"type":        "boolean",
			},
		},
	}
)

// planSchemas are a plan's schemas as published and compiled.
type planSchemas struct {
	instanceCreate, instanceUpdate, bindingCreate    map[string]any
	instanceCreateC, instanceUpdateC, bindingCreateC *jsonschema.Schema
}

func compilePlanSchemas(p PlanConfig) (*planSchemas, error) {
	ps := &planSchemas{instanceCreate: defaultInstanceCreate, instanceUpdate: defaultInstanceUpdate, bindingCreate: defaultBindingCreate}
	if s := p.Schemas; s != nil {
		if si := s.ServiceInstance; si != nil {
			if si.Create != nil {
				ps.instanceCreate = si.Create.Parameters
			}
			if si.Update != nil {
				ps.instanceUpdate = si.Update.Parameters
			}
		}
		if sb := s.ServiceBinding; sb != nil && sb.Create != nil {
			ps.bindingCreate = sb.Create.Parameters
		}
	}
	var err error
	for _, s := range []struct {
		name string
		doc  *map[string]any
		out  **jsonschema.Schema
	}{
		{"schemas.service_instance.create", &ps.instanceCreate, &ps.instanceCreateC},
		{"schemas.service_instance.update", &ps.instanceUpdate, &ps.instanceUpdateC},
		{"schemas.service_binding.create", &ps.bindingCreate, &ps.bindingCreateC},
	} {
		if *s.doc, *s.out, err = compileSchema(*s.doc); err != nil {
			return nil, fmt.Errorf("%s.parameters: %w", s.name, err)
		}
	}
	return ps, nil
}

// noLoader refuses every reference: catalog schemas must not contain
// external references.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external reference %q: schemas must be self-contained", url)
}

// compileSchema returns doc as JSON values (with $schema set to draft-04
// when it names none, as the specification requires a $schema key) and
// its compiled form.
func compileSchema(doc map[string]any) (map[string]any, *jsonschema.Schema, error) {
	if doc == nil {
		return nil, nil, errors.New("a schema object is required")
	}
	if _, ok := doc["$schema"]; !ok {
		withVersion := map[string]any{"$schema": draft04}
		for k, v := range doc {
			withVersion[k] = v
		}
		doc = withVersion
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > maxSchemaBytes {
		return nil, nil, fmt.Errorf("schema is %d bytes; the specification allows at most %d", len(raw), maxSchemaBytes)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, err
	}
	var plain map[string]any
	if err := json.Unmarshal(raw, &plain); err != nil {
		return nil, nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.UseLoader(noLoader{})
	const url = "mem:///parameters.json"
	if err := c.AddResource(url, v); err != nil {
		return nil, nil, err
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, nil, err
	}
	return plain, s, nil
}

// validateParams checks parameters (canonical JSON, nil when absent)
// against a compiled schema; a failure is a 400 naming what is wrong.
func validateParams(what string, s *jsonschema.Schema, params json.RawMessage) *apiError {
	if params == nil {
		params = json.RawMessage("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(params))
	if err != nil {
		return badRequest("parameters: %v", err)
	}
	if err := s.Validate(v); err != nil {
		return badRequest("parameters do not match the plan's %s schema: %s", what, oneLine(err.Error()))
	}
	return nil
}

// oneLine joins the lines of a multi-line message.
func oneLine(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}
