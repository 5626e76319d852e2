// Package expr compiles Mixer's expression language (Istio 1.4's
// policy/v1beta1 expression reference: attributes, |, ==, !=, &&, ||, !,
// ip(), timestamp(), match(), email(), dnsName(), uri(), conditional(),
// .startsWith/.endsWith/.matches, map indexing) with cel-go underneath:
// each expression is translated to CEL once, type-checked against the
// attribute vocabulary, and evaluated over attribute bags, recording
// exactly the attributes (and map keys) it read.
package expr

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	"github.com/mast-mesh/mast/internal/mixer/api/policypb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
)

// Compiler compiles expressions against one vocabulary. It is immutable
// and safe for concurrent use.
type Compiler struct {
	vocab attribute.Vocabulary
	env   *cel.Env
}

// NewCompiler returns a compiler for v.
func NewCompiler(v attribute.Vocabulary) (*Compiler, error) {
	opts := []cel.EnvOption{cel.OptionalTypes()}
	opts = append(opts, functions()...)
	for _, name := range v.Names() {
		opts = append(opts, cel.Variable(name, cel.OptionalType(celType(v[name]))))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("expression environment: %w", err)
	}
	return &Compiler{vocab: v, env: env}, nil
}

// Vocabulary returns the compiler's vocabulary.
func (c *Compiler) Vocabulary() attribute.Vocabulary { return c.vocab }

func celType(t attribute.Type) *cel.Type {
	switch t {
	case policypb.ValueType_INT64:
		return cel.IntType
	case policypb.ValueType_DOUBLE:
		return cel.DoubleType
	case policypb.ValueType_BOOL:
		return cel.BoolType
	case policypb.ValueType_TIMESTAMP:
		return cel.TimestampType
	case policypb.ValueType_DURATION:
		return cel.DurationType
	case policypb.ValueType_IP_ADDRESS:
		return cel.BytesType
	case policypb.ValueType_STRING_MAP:
		return cel.MapType(cel.StringType, cel.StringType)
	}
	return cel.StringType
}

// Expression is one compiled expression.
type Expression struct {
	src  string
	prg  cel.Program
	keys []mapKey
	typ  attribute.Type
}

// Compile translates, type-checks and plans src.
func (c *Compiler) Compile(src string) (*Expression, error) {
	t := &translator{vocab: c.vocab}
	celSrc, err := t.translate(src)
	if err != nil {
		return nil, err
	}
	env := c.env
	if len(t.keys) > 0 {
		opts := make([]cel.EnvOption, len(t.keys))
		for i := range t.keys {
			opts[i] = cel.Variable(fmt.Sprintf("%s%d", keyVarPrefix, i), cel.OptionalType(cel.StringType))
		}
		if env, err = env.Extend(opts...); err != nil {
			return nil, err
		}
	}
	ast, iss := env.Compile(celSrc)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%s", cleanIssues(iss.Err().Error()))
	}
	typ, ok := valueType(ast.OutputType())
	if !ok {
		return nil, fmt.Errorf("result type %s is not an attribute type", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	return &Expression{src: src, prg: prg, keys: t.keys, typ: typ}, nil
}

// cleanIssues keeps CEL's messages but drops its rendering of the
// translated source, which names variables the user did not write.
func cleanIssues(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "|") {
			continue
		}
		if i := strings.Index(l, "<input>:"); i >= 0 {
			if j := strings.Index(l[i:], ": "); j >= 0 {
				l = l[:i] + l[i+j+2:]
			}
		}
		l = strings.TrimPrefix(l, "ERROR: ")
		l = strings.ReplaceAll(l, "optional_type(", "optional(")
		out = append(out, l)
	}
	return strings.Join(out, "; ")
}

func valueType(t *cel.Type) (attribute.Type, bool) {
	switch {
	case t.IsExactType(cel.StringType):
		return policypb.ValueType_STRING, true
	case t.IsExactType(cel.IntType):
		return policypb.ValueType_INT64, true
	case t.IsExactType(cel.DoubleType):
		return policypb.ValueType_DOUBLE, true
	case t.IsExactType(cel.BoolType):
		return policypb.ValueType_BOOL, true
	case t.IsExactType(cel.TimestampType):
		return policypb.ValueType_TIMESTAMP, true
	case t.IsExactType(cel.DurationType):
		return policypb.ValueType_DURATION, true
	case t.IsExactType(cel.BytesType):
		return policypb.ValueType_IP_ADDRESS, true
	case t.IsExactType(cel.MapType(cel.StringType, cel.StringType)):
		return policypb.ValueType_STRING_MAP, true
	}
	return 0, false
}

// String returns the source expression.
func (e *Expression) String() string { return e.src }

// Type returns the expression's result type.
func (e *Expression) Type() attribute.Type { return e.typ }

// Eval evaluates e over bag, recording the attributes it read in refs
// (which may be nil). The result is a string, int64, float64, bool, []byte,
// time.Time, time.Duration or map[string]string.
func (e *Expression) Eval(bag attribute.Bag, refs *Refs) (any, error) {
	act := &activation{bag: bag, e: e, refs: refs}
	out, _, err := e.prg.Eval(act)
	if err != nil {
		if act.missing != "" {
			return nil, fmt.Errorf("lookup failed: %q", act.missing)
		}
		return nil, err
	}
	switch v := out.(type) {
	case types.Bytes:
		return []byte(v), nil
	case types.Timestamp:
		return v.Time, nil
	case types.Duration:
		return v.Duration, nil
	}
	if m, ok := out.Value().(map[string]string); ok {
		return m, nil
	}
	if m, ok := out.(interface{ Value() any }); ok {
		if mv, ok := m.Value().(map[ref.Val]ref.Val); ok {
			r := make(map[string]string, len(mv))
			for k, v := range mv {
				r[fmt.Sprint(k.Value())] = fmt.Sprint(v.Value())
			}
			return r, nil
		}
	}
	return out.Value(), nil
}

// EvalBool evaluates a boolean expression.
func (e *Expression) EvalBool(bag attribute.Bag, refs *Refs) (bool, error) {
	v, err := e.Eval(bag, refs)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("want a bool, got %T", v)
	}
	return b, nil
}

type activation struct {
	bag     attribute.Bag
	e       *Expression
	refs    *Refs
	missing string // the last absent attribute read, for error messages
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) ResolveName(name string) (any, bool) {
	if strings.HasPrefix(name, keyVarPrefix) {
		var i int
		if _, err := fmt.Sscanf(name[len(keyVarPrefix):], "%d", &i); err == nil && i >= 0 && i < len(a.e.keys) {
			k := a.e.keys[i]
			m, _ := a.bag.Get(k.attr)
			mm, _ := m.(map[string]string)
			v, ok := mm[k.key]
			a.refs.addKey(k.attr, k.key, ok)
			if !ok {
				a.missing = k.attr + "[" + k.key + "]"
				return types.OptionalNone, true
			}
			return types.OptionalOf(types.String(v)), true
		}
	}
	v, ok := a.bag.Get(name)
	a.refs.add(name, ok)
	if !ok {
		a.missing = name
		return types.OptionalNone, true
	}
	switch x := v.(type) {
	case string:
		return types.OptionalOf(types.String(x)), true
	case int64:
		return types.OptionalOf(types.Int(x)), true
	case float64:
		return types.OptionalOf(types.Double(x)), true
	case bool:
		return types.OptionalOf(types.Bool(x)), true
	case []byte:
		return types.OptionalOf(types.Bytes(x)), true
	case time.Time:
		return types.OptionalOf(types.Timestamp{Time: x}), true
	case time.Duration:
		return types.OptionalOf(types.Duration{Duration: x}), true
	}
	return types.OptionalOf(types.DefaultTypeAdapter.NativeToValue(v)), true
}
