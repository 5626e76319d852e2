// Package celfilter compiles the CEL expressions of Istio's Telemetry API
// access log filters (accessLogging[].filter.expression) in mastd: each is
// parsed and type-checked with cel-go against Istio's attributes, then
// translated into Envoy's native access log filters (status_code_filter,
// duration_filter, header_filter, and/or), which mast-proxy evaluates
// without a CEL interpreter. Expressions outside that translatable subset
// are refused by name rather than sent to proxies that cannot run them.
package celfilter

import (
	"errors"
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
)

// ErrUnsupported marks a valid CEL expression Mast cannot translate.
var ErrUnsupported = errors.New("not supported by Mast")

// attributes are Istio's attribute roots usable in expressions.
var attributes = []string{"request", "response", "connection", "upstream", "source", "destination", "xds", "filter_state"}

// Compile checks expr and returns the Envoy access log filter that keeps
// the records it is true for.
func Compile(expr string) (*accesslogv3.AccessLogFilter, error) {
	opts := []cel.EnvOption{}
	for _, a := range attributes {
		opts = append(opts, cel.Variable(a, cel.MapType(cel.StringType, cel.DynType)))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	a, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("invalid CEL: %w", iss.Err())
	}
	if t := a.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("invalid CEL: the expression is of type %v, not bool", t)
	}
	f, err := translate(a.NativeRep().Expr(), false)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", expr, err)
	}
	return f, nil
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%s: %w (supported: comparisons of response.code or response.duration with a constant, "+
		"request.headers[NAME] == or != a string, NAME in request.headers, joined by &&, || and !)", fmt.Sprintf(format, args...), ErrUnsupported)
}

// translate turns e (negated when neg) into an access log filter.
func translate(e celast.Expr, neg bool) (*accesslogv3.AccessLogFilter, error) {
	if e.Kind() != celast.CallKind {
		return nil, unsupported("a bare %v", kindName(e))
	}
	c := e.AsCall()
	args := c.Args()
	switch fn := c.FunctionName(); fn {
	case "!_":
		return translate(args[0], !neg)
	case "_&&_", "_||_":
		and := fn == "_&&_"
		if neg {
			and = !and // De Morgan
		}
		l, err := translate(args[0], neg)
		if err != nil {
			return nil, err
		}
		r, err := translate(args[1], neg)
		if err != nil {
			return nil, err
		}
		fs := []*accesslogv3.AccessLogFilter{l, r}
		if and {
			return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: fs}}}, nil
		}
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{Filters: fs}}}, nil
	case "@in":
		name, ok := stringLit(args[0])
		if !ok || attrPath(args[1]) != "request.headers" {
			return nil, unsupported("`in` other than NAME in request.headers")
		}
		return headerFilter(&routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}, neg), nil
	case "_==_", "_!=_", "_>=_", "_>_", "_<=_", "_<_":
		return comparison(fn, args[0], args[1], neg)
	}
	return nil, unsupported("function %s", c.FunctionName())
}

func comparison(fn string, l, r celast.Expr, neg bool) (*accesslogv3.AccessLogFilter, error) {
	// attribute OP constant; a constant on the left flips the operator.
	if attrPath(l) == "" {
		l, r = r, l
		fn = map[string]string{"_==_": "_==_", "_!=_": "_!=_", "_>=_": "_<=_", "_>_": "_<_", "_<=_": "_>=_", "_<_": "_>_"}[fn]
	}
	if neg {
		fn = map[string]string{"_==_": "_!=_", "_!=_": "_==_", "_>=_": "_<_", "_>_": "_<=_", "_<=_": "_>_", "_<_": "_>=_"}[fn]
	}
	path := attrPath(l)
	switch {
	case path == "response.code":
		v, ok := intLit(r)
		if !ok {
			return nil, unsupported("response.code compared with a non-constant")
		}
		cmp, err := compare(fn, v)
		if err != nil {
			return nil, err
		}
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: cmp}}}, nil
	case path == "response.duration":
		d, ok := durationLit(r)
		if !ok {
			return nil, unsupported("response.duration compared with something other than duration(\"...\")")
		}
		cmp, err := compare(fn, d.Milliseconds())
		if err != nil {
			return nil, err
		}
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_DurationFilter{DurationFilter: &accesslogv3.DurationFilter{Comparison: cmp}}}, nil
	case len(path) > len("request.headers[") && path[:len("request.headers[")] == "request.headers[":
		if fn != "_==_" && fn != "_!=_" {
			return nil, unsupported("request headers compared with %s", fn)
		}
		v, ok := stringLit(r)
		if !ok {
			return nil, unsupported("a request header compared with a non-string")
		}
		name := path[len("request.headers[") : len(path)-1]
		m := &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}}}
		return headerFilter(m, fn == "_!=_"), nil
	}
	return nil, unsupported("the attribute %q", path)
}

func headerFilter(m *routev3.HeaderMatcher, invert bool) *accesslogv3.AccessLogFilter {
	m.InvertMatch = invert
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{Header: m}}}
}

// compare builds Envoy's comparison (EQ, NE, GE, LE) for attr fn v.
func compare(fn string, v int64) (*accesslogv3.ComparisonFilter, error) {
	op := accesslogv3.ComparisonFilter_EQ
	switch fn {
	case "_!=_":
		op = accesslogv3.ComparisonFilter_NE
	case "_>=_":
		op = accesslogv3.ComparisonFilter_GE
	case "_>_":
		op, v = accesslogv3.ComparisonFilter_GE, v+1
	case "_<=_":
		op = accesslogv3.ComparisonFilter_LE
	case "_<_":
		op, v = accesslogv3.ComparisonFilter_LE, v-1
	}
	if v < 0 || v > 1<<32-1 {
		if op == accesslogv3.ComparisonFilter_LE && v < 0 {
			// x <= -1 holds for nothing: x == a value no record has.
			op, v = accesslogv3.ComparisonFilter_EQ, 1<<32-1
		} else if v > 1<<32-1 || v < 0 {
			return nil, unsupported("the constant %d", v)
		}
	}
	return &accesslogv3.ComparisonFilter{Op: op, Value: &corev3.RuntimeUInt32{DefaultValue: uint32(v)}}, nil
}

// attrPath renders request.headers[x] / response.code style paths; ""
// for anything else.
func attrPath(e celast.Expr) string {
	return exprPath(e, func(p, k string) string { return p + "[" + k + "]" })
}

// exprPath renders an identifier, field selections and indexing by string
// literals as a dotted path; index renders p indexed by k ("" refuses it).
// It returns "" for any other expression.
func exprPath(e celast.Expr, index func(p, k string) string) string {
	switch e.Kind() {
	case celast.IdentKind:
		return e.AsIdent()
	case celast.SelectKind:
		s := e.AsSelect()
		if s.IsTestOnly() {
			return ""
		}
		if p := exprPath(s.Operand(), index); p != "" {
			return p + "." + s.FieldName()
		}
	case celast.CallKind:
		c := e.AsCall()
		if c.FunctionName() == "_[_]" && len(c.Args()) == 2 {
			if k, ok := stringLit(c.Args()[1]); ok {
				if p := exprPath(c.Args()[0], index); p != "" {
					return index(p, k)
				}
			}
		}
	}
	return ""
}

func intLit(e celast.Expr) (int64, bool) {
	if e.Kind() != celast.LiteralKind {
		return 0, false
	}
	switch v := e.AsLiteral().(type) {
	case types.Int:
		return int64(v), true
	case types.Uint:
		return int64(v), true
	}
	return 0, false
}

func stringLit(e celast.Expr) (string, bool) {
	if e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

func durationLit(e celast.Expr) (time.Duration, bool) {
	if e.Kind() != celast.CallKind || e.AsCall().FunctionName() != "duration" || len(e.AsCall().Args()) != 1 {
		return 0, false
	}
	s, ok := stringLit(e.AsCall().Args()[0])
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

func kindName(e celast.Expr) string {
	switch e.Kind() {
	case celast.LiteralKind:
		return "constant"
	case celast.IdentKind, celast.SelectKind:
		return "attribute"
	}
	return "expression"
}
