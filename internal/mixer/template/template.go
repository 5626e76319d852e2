// Package template holds Mixer's templates (Istio 1.4's compiled
// templates): what an instance of each one carries, which of its params are
// expressions, and the compiled form that builds an Instance from an
// attribute bag.
package template

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/api/policypb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/mixer/expr"
)

// Variety says which Mixer call dispatches a template.
type Variety int

// The varieties of Istio's templates.
const (
	Check Variety = iota + 1
	Quota
	Report
)

func (v Variety) String() string {
	switch v {
	case Check:
		return "check"
	case Quota:
		return "quota"
	case Report:
		return "report"
	}
	return "unknown"
}

// fieldKind says how a template param is given.
type fieldKind int

const (
	exprField    fieldKind = iota + 1 // one expression
	exprMapField                      // map of name -> expression
	literalField                      // a plain string, not evaluated
	nestedField                       // an object with its own fields
)

type field struct {
	name     string // params key (snake_case, as Istio's templates); camelCase is accepted too
	kind     fieldKind
	types    []attribute.Type // allowed result types of an exprField; empty = any
	required bool
	nested   []field
}

// Template describes one template.
type Template struct {
	Name    string
	Variety Variety
	fields  []field
}

var (
	str = []attribute.Type{policypb.ValueType_STRING}
	tsT = []attribute.Type{policypb.ValueType_TIMESTAMP}
	i64 = []attribute.Type{policypb.ValueType_INT64}
)

// All returns Istio 1.4's templates that Mast implements, by name.
func All() map[string]*Template {
	subject := []field{{name: "user", kind: exprField, types: str}, {name: "groups", kind: exprField, types: str}, {name: "properties", kind: exprMapField}}
	action := []field{{name: "namespace", kind: exprField, types: str}, {name: "service", kind: exprField, types: str},
		{name: "method", kind: exprField, types: str}, {name: "path", kind: exprField, types: str}, {name: "properties", kind: exprMapField}}
	ts := []*Template{
		{Name: "checknothing", Variety: Check},
		{Name: "listentry", Variety: Check, fields: []field{{name: "value", kind: exprField, required: true,
			types: []attribute.Type{policypb.ValueType_STRING, policypb.ValueType_IP_ADDRESS, policypb.ValueType_DNS_NAME, policypb.ValueType_EMAIL_ADDRESS, policypb.ValueType_URI}}}},
		{Name: "authorization", Variety: Check, fields: []field{{name: "subject", kind: nestedField, nested: subject}, {name: "action", kind: nestedField, nested: action}}},
		{Name: "apikey", Variety: Check, fields: []field{{name: "api", kind: exprField, types: str}, {name: "api_version", kind: exprField, types: str},
			{name: "api_operation", kind: exprField, types: str}, {name: "api_key", kind: exprField, types: str}, {name: "timestamp", kind: exprField, types: tsT}}},
		{Name: "quota", Variety: Quota, fields: []field{{name: "dimensions", kind: exprMapField}}},
		{Name: "metric", Variety: Report, fields: []field{{name: "value", kind: exprField, required: true}, {name: "dimensions", kind: exprMapField},
			{name: "monitored_resource_type", kind: exprField, types: str}, {name: "monitored_resource_dimensions", kind: exprMapField}}},
		{Name: "logentry", Variety: Report, fields: []field{{name: "variables", kind: exprMapField}, {name: "timestamp", kind: exprField, types: tsT},
			{name: "severity", kind: exprField, types: str}, {name: "monitored_resource_type", kind: exprField, types: str},
			{name: "monitored_resource_dimensions", kind: exprMapField}}},
		{Name: "tracespan", Variety: Report, fields: []field{{name: "trace_id", kind: exprField, types: str, required: true},
			{name: "span_id", kind: exprField, types: str, required: true}, {name: "parent_span_id", kind: exprField, types: str},
			{name: "span_name", kind: exprField, types: str}, {name: "start_time", kind: exprField, types: tsT, required: true},
			{name: "end_time", kind: exprField, types: tsT, required: true}, {name: "span_tags", kind: exprMapField},
			{name: "http_status_code", kind: exprField, types: i64}, {name: "client_span", kind: exprField},
			{name: "rewrite_client_span_id", kind: exprField}, {name: "source_name", kind: exprField, types: str},
			{name: "source_ip", kind: exprField}, {name: "destination_name", kind: exprField, types: str},
			{name: "destination_ip", kind: exprField}, {name: "request_size", kind: exprField, types: i64},
			{name: "request_total_size", kind: exprField, types: i64}, {name: "response_size", kind: exprField, types: i64},
			{name: "response_total_size", kind: exprField, types: i64}, {name: "api_protocol", kind: exprField, types: str}}},
		{Name: "reportnothing", Variety: Report},
	}
	out := make(map[string]*Template, len(ts))
	for _, t := range ts {
		out[t.Name] = t
	}
	return out
}

// Names returns the template names, sorted.
func Names() []string { return slices.Sorted(maps.Keys(All())) }

// Instance is one evaluated instance: its fields by param name (nested
// objects as map[string]any, maps of expressions as map[string]any).
type Instance struct {
	Name     string // full name: name.kind.namespace
	Template string
	Fields   map[string]any
}

// String returns a string field ("" when absent).
func (in *Instance) String(name string) string { return attribute.String(in.Fields[name]) }

// Map returns a map field as strings.
func (in *Instance) Map(name string) map[string]string {
	m, _ := in.Fields[name].(map[string]any)
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = attribute.String(v)
	}
	return out
}

// Compiled is an instance resource compiled against a vocabulary.
type Compiled struct {
	Name     string
	Template *Template
	fields   []compiledField
}

type compiledField struct {
	name   string
	kind   fieldKind
	e      *expr.Expression
	m      map[string]*expr.Expression
	lit    string
	nested []compiledField
}

// Compile compiles an instance's params. Errors name the field
// ("params.dimensions.source: ...").
func Compile(c *expr.Compiler, t *Template, name string, params *structpb.Struct) (*Compiled, error) {
	fs, err := compileFields(c, t.fields, params.GetFields(), "params")
	if err != nil {
		return nil, err
	}
	return &Compiled{Name: name, Template: t, fields: fs}, nil
}

// JSONName is the proto JSON (camelCase) name of a snake_case field name;
// Mixer's params accept both spellings, as Istio's jsonpb did.
func JSONName(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

func compileFields(c *expr.Compiler, spec []field, given map[string]*structpb.Value, path string) ([]compiledField, error) {
	known := map[string]bool{}
	var out []compiledField
	for _, f := range spec {
		key := f.name
		v, ok := given[key]
		if !ok {
			key = JSONName(f.name)
			v, ok = given[key]
		}
		known[f.name], known[JSONName(f.name)] = true, true
		p := path + "." + key
		if !ok {
			if f.required {
				return nil, fmt.Errorf("%s.%s: required", path, f.name)
			}
			continue
		}
		cf := compiledField{name: f.name, kind: f.kind}
		switch f.kind {
		case exprField, literalField:
			s, err := exprString(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if f.kind == literalField {
				cf.lit = s
				break
			}
			e, err := c.Compile(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", p, s, err)
			}
			if len(f.types) > 0 && !typeIn(e.Type(), f.types) {
				return nil, fmt.Errorf("%s: %q: result type %s, want %s", p, s, e.Type(), typeNames(f.types))
			}
			cf.e = e
		case exprMapField:
			sv := v.GetStructValue()
			if sv == nil {
				return nil, fmt.Errorf("%s: want a map of expressions", p)
			}
			cf.m = map[string]*expr.Expression{}
			for k, ev := range sv.GetFields() {
				s, err := exprString(ev)
				if err != nil {
					return nil, fmt.Errorf("%s.%s: %w", p, k, err)
				}
				e, err := c.Compile(s)
				if err != nil {
					return nil, fmt.Errorf("%s.%s: %q: %w", p, k, s, err)
				}
				cf.m[k] = e
			}
		case nestedField:
			sv := v.GetStructValue()
			if sv == nil {
				return nil, fmt.Errorf("%s: want an object", p)
			}
			n, err := compileFields(c, f.nested, sv.GetFields(), p)
			if err != nil {
				return nil, err
			}
			cf.nested = n
		}
		out = append(out, cf)
	}
	var unknown []string
	for k := range given {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%s.%s: unknown field", path, unknown[0])
	}
	return out, nil
}

// exprString accepts an expression given as a YAML string, number or bool
// (dimensions: {code: 200} is the expression "200").
func exprString(v *structpb.Value) (string, error) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue, nil
	case *structpb.Value_NumberValue:
		if k.NumberValue == float64(int64(k.NumberValue)) {
			return fmt.Sprint(int64(k.NumberValue)), nil
		}
		return fmt.Sprint(k.NumberValue), nil
	case *structpb.Value_BoolValue:
		return fmt.Sprint(k.BoolValue), nil
	}
	return "", fmt.Errorf("want an expression (a string)")
}

func typeIn(t attribute.Type, ts []attribute.Type) bool {
	for _, x := range ts {
		if x == t || (t == policypb.ValueType_STRING && (x == policypb.ValueType_DNS_NAME || x == policypb.ValueType_EMAIL_ADDRESS || x == policypb.ValueType_URI)) {
			return true
		}
	}
	return false
}

func typeNames(ts []attribute.Type) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.String())
	}
	return strings.Join(s, " or ")
}

// Eval builds the instance for one request, recording referenced
// attributes in refs.
func (c *Compiled) Eval(bag attribute.Bag, refs *expr.Refs) (*Instance, error) {
	fs, err := evalFields(c.fields, bag, refs)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", c.Name, err)
	}
	return &Instance{Name: c.Name, Template: c.Template.Name, Fields: fs}, nil
}

func evalFields(fs []compiledField, bag attribute.Bag, refs *expr.Refs) (map[string]any, error) {
	out := make(map[string]any, len(fs))
	for _, f := range fs {
		switch f.kind {
		case literalField:
			out[f.name] = f.lit
		case exprField:
			v, err := f.e.Eval(bag, refs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			out[f.name] = v
		case exprMapField:
			m := make(map[string]any, len(f.m))
			for k, e := range f.m {
				v, err := e.Eval(bag, refs)
				if err != nil {
					return nil, fmt.Errorf("%s.%s: %w", f.name, k, err)
				}
				m[k] = v
			}
			out[f.name] = m
		case nestedField:
			n, err := evalFields(f.nested, bag, refs)
			if err != nil {
				return nil, fmt.Errorf("%s.%w", f.name, err)
			}
			out[f.name] = n
		}
	}
	return out, nil
}
