package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// The request bodies of the OSB API v2.17 and their decoders. Decoders are
// the broker's edge for untrusted input: they reject malformed JSON, bodies
// that are not objects, wrongly typed fields, trailing data and missing
// required fields with a 400 naming the field, and they canonicalise the
// free-form objects (parameters, context) so that requests can be compared.

// maxBodyBytes bounds a request body (plans' schemas are at most 64 kB,
// parameters far less).
const maxBodyBytes = 256 << 10

// maxIDLength bounds instance, binding and operation identifiers.
const maxIDLength = 1024

// MaintenanceInfo is a plan's maintenance_info.
type MaintenanceInfo struct {
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

type provisionRequest struct {
	ServiceID        string           `json:"service_id"`
	PlanID           string           `json:"plan_id"`
	Context          json.RawMessage  `json:"context"`
	OrganizationGUID string           `json:"organization_guid"`
	SpaceGUID        string           `json:"space_guid"`
	Parameters       json.RawMessage  `json:"parameters"`
	MaintenanceInfo  *MaintenanceInfo `json:"maintenance_info"`
}

type previousValues struct {
	ServiceID       string           `json:"service_id"`
	PlanID          string           `json:"plan_id"`
	OrganizationID  string           `json:"organization_id"`
	SpaceID         string           `json:"space_id"`
	MaintenanceInfo *MaintenanceInfo `json:"maintenance_info"`
}

type updateRequest struct {
	ServiceID       string           `json:"service_id"`
	PlanID          *string          `json:"plan_id"`
	Context         json.RawMessage  `json:"context"`
	Parameters      json.RawMessage  `json:"parameters"`
	PreviousValues  *previousValues  `json:"previous_values"`
	MaintenanceInfo *MaintenanceInfo `json:"maintenance_info"`
}

type bindResource struct {
	AppGUID string `json:"app_guid,omitempty"`
	Route   string `json:"route,omitempty"`
}

type bindRequest struct {
	ServiceID            string          `json:"service_id"`
	PlanID               string          `json:"plan_id"`
	Context              json.RawMessage `json:"context"`
	AppGUID              *string         `json:"app_guid"`
	BindResource         json.RawMessage `json:"bind_resource"`
	Parameters           json.RawMessage `json:"parameters"`
	PredecessorBindingID *string         `json:"predecessor_binding_id"`
}

// decodeProvision decodes the body of PUT /v2/service_instances/:id.
func decodeProvision(body []byte) (*provisionRequest, *apiError) {
	var r provisionRequest
	if err := decodeObject(body, &r); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{
		{"service_id", r.ServiceID}, {"plan_id", r.PlanID},
		{"organization_guid", r.OrganizationGUID}, {"space_guid", r.SpaceGUID},
	} {
		if f.v == "" {
			return nil, badRequest("%s is required and must be a non-empty string", f.name)
		}
	}
	var err *apiError
	if r.Context, err = canonicalObject("context", r.Context); err != nil {
		return nil, err
	}
	if r.Parameters, err = canonicalObject("parameters", r.Parameters); err != nil {
		return nil, err
	}
	if err := checkMaintenanceInfo(r.MaintenanceInfo); err != nil {
		return nil, err
	}
	return &r, nil
}

// decodeUpdate decodes the body of PATCH /v2/service_instances/:id.
func decodeUpdate(body []byte) (*updateRequest, *apiError) {
	var r updateRequest
	if err := decodeObject(body, &r); err != nil {
		return nil, err
	}
	if r.ServiceID == "" {
		return nil, badRequest("service_id is required and must be a non-empty string")
	}
	if r.PlanID != nil && *r.PlanID == "" {
		return nil, badRequest("plan_id, when present, must be a non-empty string")
	}
	var err *apiError
	if r.Context, err = canonicalObject("context", r.Context); err != nil {
		return nil, err
	}
	if r.Parameters, err = canonicalObject("parameters", r.Parameters); err != nil {
		return nil, err
	}
	if err := checkMaintenanceInfo(r.MaintenanceInfo); err != nil {
		return nil, err
	}
	if r.PreviousValues != nil {
		if err := checkMaintenanceInfo(r.PreviousValues.MaintenanceInfo); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// decodeBind decodes the body of PUT .../service_bindings/:id. A rotation
// request may carry predecessor_binding_id alone.
func decodeBind(body []byte) (*bindRequest, *apiError) {
	var r bindRequest
	if err := decodeObject(body, &r); err != nil {
		return nil, err
	}
	if r.PredecessorBindingID != nil && *r.PredecessorBindingID == "" {
		return nil, badRequest("predecessor_binding_id, when present, must be a non-empty string")
	}
	if r.PredecessorBindingID == nil {
		if r.ServiceID == "" {
			return nil, badRequest("service_id is required and must be a non-empty string")
		}
		if r.PlanID == "" {
			return nil, badRequest("plan_id is required and must be a non-empty string")
		}
	}
	if r.AppGUID != nil && *r.AppGUID == "" {
		return nil, badRequest("app_guid, when present, must be a non-empty string")
	}
	var err *apiError
	if r.Context, err = canonicalObject("context", r.Context); err != nil {
		return nil, err
	}
	if r.Parameters, err = canonicalObject("parameters", r.Parameters); err != nil {
		return nil, err
	}
	if r.BindResource, err = canonicalObject("bind_resource", r.BindResource); err != nil {
		return nil, err
	}
	if r.BindResource != nil {
		var br bindResource
		if err := decodeObject(r.BindResource, &br); err != nil {
			err.description = "bind_resource: " + err.description
			return nil, err
		}
	}
	return &r, nil
}

// decodeObject decodes one JSON object into v: anything else, trailing
// data, or a field of the wrong type is a 400 naming the problem. Unknown
// fields are ignored, as the specification requires of receivers.
func decodeObject(body []byte, v any) *apiError {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return badRequest("the request body is empty; a JSON object is required")
	}
	if trimmed[0] != '{' {
		return badRequest("the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("the request body has data after its JSON object")
	}
	return nil
}

func jsonError(err error) *apiError {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "the body"
		}
		return badRequest("%s: expected %s, got JSON %s", field, jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return badRequest("malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends early")
	}
	return badRequest("malformed JSON: %v", err)
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "ptr", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	}
	return kind
}

// canonicalObject checks that raw (a field's JSON, possibly absent) is an
// object or null and returns it re-encoded with sorted keys, so that equal
// objects compare equal as bytes. null and absent both return nil.
func canonicalObject(field string, raw json.RawMessage) (json.RawMessage, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, badRequest("%s must be a JSON object", field)
	}
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, badRequest("%s: %v", field, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, badRequest("%s: %v", field, err)
	}
	return out, nil
}

func checkMaintenanceInfo(m *MaintenanceInfo) *apiError {
	if m != nil && m.Version == "" {
		return badRequest("maintenance_info.version is required when maintenance_info is given")
	}
	return nil
}

// checkID validates an identifier taken from the URL or the query.
func checkID(what, id string) *apiError {
	switch {
	case id == "":
		return badRequest("%s must be a non-empty string", what)
	case len(id) > maxIDLength:
		return badRequest("%s is longer than %d bytes", what, maxIDLength)
	case strings.ContainsAny(id, "\x00/"):
		return badRequest("%s contains a NUL or slash", what)
	}
	return nil
}
