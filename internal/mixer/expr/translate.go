package expr

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"

	"github.com/mast-mesh/mast/internal/mixer/api/policypb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
)

// mapKey is a lookup of a constant key in a map attribute
// (source.labels["app"]); it becomes a variable of its own so that the
// evaluation can record exactly which key it read.
type mapKey struct {
	attr, key string
}

// translator turns one Mixer expression (Go expression syntax, the
// language of Istio's policy/v1beta1 expression reference) into CEL source
// over optional-typed attribute variables:
//
//	attribute a        -> a.value()            (a must be present)
//	a | b              -> a.or(b) / a.orValue(b)  (b when a is absent)
//	m["k"] (m an attribute) -> a variable of its own, recorded as a map-key reference
//	conditional(c,a,b) -> (c ? a : b)
type translator struct {
	vocab attribute.Vocabulary
	keys  []mapKey
}

const keyVarPrefix = "mixer_k"

func (t *translator) translate(src string) (string, error) {
	if strings.TrimSpace(src) == "" {
		return "", fmt.Errorf("empty expression")
	}
	e, err := parser.ParseExpr(src)
	if err != nil {
		return "", fmt.Errorf("syntax error: %v", trimPos(err))
	}
	return t.tr(e, false)
}

func trimPos(err error) string {
	s := err.Error()
	if i := strings.Index(s, ": "); i > 0 && strings.Contains(s[:i], ":") {
		return s[i+2:]
	}
	return s
}

// attrName returns the dotted attribute name an identifier or selector
// chain spells, or "" when e is not such a chain.
func attrName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		if p := attrName(x.X); p != "" {
			return p + "." + x.Sel.Name
		}
	}
	return ""
}

var methods = map[string]bool{"startsWith": true, "endsWith": true, "matches": true}

func (t *translator) tr(e ast.Expr, opt bool) (string, error) {
	wrap := func(s string, err error) (string, error) {
		if err != nil || !opt {
			return s, err
		}
		return "optional.of(" + s + ")", nil
	}
	switch x := e.(type) {
	case *ast.ParenExpr:
		s, err := t.tr(x.X, opt)
		return "(" + s + ")", err
	case *ast.BasicLit:
		switch x.Kind {
		case token.INT, token.FLOAT:
			return wrap(x.Value, nil)
		case token.STRING:
			s, err := strconv.Unquote(x.Value)
			if err != nil {
				return "", fmt.Errorf("string %s: %v", x.Value, err)
			}
			return wrap(strconv.Quote(s), nil)
		}
		return "", fmt.Errorf("literal %s: not supported", x.Value)
	case *ast.Ident, *ast.SelectorExpr:
		name := attrName(x)
		if name == "true" || name == "false" {
			return wrap(name, nil)
		}
		if name == "" {
			return "", fmt.Errorf("unsupported expression %s", render(x))
		}
		if _, ok := t.vocab[name]; !ok {
			return "", fmt.Errorf("unknown attribute %s", name)
		}
		if opt {
			return name, nil
		}
		return name + ".value()", nil
	case *ast.IndexExpr:
		if name := attrName(x.X); name != "" && t.vocab[name] == policypb.ValueType_STRING_MAP {
			if lit, ok := x.Index.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				k, err := strconv.Unquote(lit.Value)
				if err != nil {
					return "", fmt.Errorf("string %s: %v", lit.Value, err)
				}
				v := keyVarPrefix + strconv.Itoa(len(t.keys))
				t.keys = append(t.keys, mapKey{attr: name, key: k})
				if opt {
					return v, nil
				}
				return v + ".value()", nil
			}
		}
		m, err := t.tr(x.X, false)
		if err != nil {
			return "", err
		}
		k, err := t.tr(x.Index, false)
		if err != nil {
			return "", err
		}
		if opt {
			return m + "[?" + k + "]", nil
		}
		return m + "[" + k + "]", nil
	case *ast.UnaryExpr:
		if x.Op != token.NOT && x.Op != token.SUB {
			return "", fmt.Errorf("operator %s: not supported", x.Op)
		}
		s, err := t.tr(x.X, false)
		return wrap(x.Op.String()+s, err)
	case *ast.BinaryExpr:
		if x.Op == token.OR {
			l, err := t.tr(x.X, true)
			if err != nil {
				return "", err
			}
			r, err := t.tr(x.Y, opt)
			if err != nil {
				return "", err
			}
			if opt {
				return l + ".or(" + r + ")", nil
			}
			return l + ".orValue(" + r + ")", nil
		}
		switch x.Op {
		case token.EQL, token.NEQ, token.LAND, token.LOR, token.LSS, token.GTR, token.LEQ, token.GEQ:
		default:
			return "", fmt.Errorf("operator %s: not supported", x.Op)
		}
		l, err := t.tr(x.X, false)
		if err != nil {
			return "", err
		}
		r, err := t.tr(x.Y, false)
		if err != nil {
			return "", err
		}
		return wrap("("+l+" "+x.Op.String()+" "+r+")", nil)
	case *ast.CallExpr:
		s, err := t.call(x)
		return wrap(s, err)
	}
	return "", fmt.Errorf("unsupported expression %s", render(e))
}

func (t *translator) call(x *ast.CallExpr) (string, error) {
	args := make([]string, len(x.Args))
	for i, a := range x.Args {
		s, err := t.tr(a, false)
		if err != nil {
			return "", err
		}
		args[i] = s
	}
	switch f := x.Fun.(type) {
	case *ast.Ident:
		switch f.Name {
		case "conditional":
			if len(args) != 3 {
				return "", fmt.Errorf("conditional: want 3 arguments, got %d", len(args))
			}
			return "(" + args[0] + " ? " + args[1] + " : " + args[2] + ")", nil
		case "ip", "timestamp", "match", "email", "dnsName", "uri", "emptyStringMap", "toLower":
			return f.Name + "(" + strings.Join(args, ", ") + ")", nil
		}
		return "", fmt.Errorf("unknown function %s", f.Name)
	case *ast.SelectorExpr:
		if !methods[f.Sel.Name] {
			return "", fmt.Errorf("unknown function %s", render(f))
		}
		recv, err := t.tr(f.X, false)
		if err != nil {
			return "", err
		}
		return recv + "." + f.Sel.Name + "(" + strings.Join(args, ", ") + ")", nil
	}
	return "", fmt.Errorf("unsupported call %s", render(x))
}

func render(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return render(x.X) + "." + x.Sel.Name
	}
	return fmt.Sprintf("%T", e)
}
