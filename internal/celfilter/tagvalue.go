package celfilter

import (
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"

	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// tagAttributes are the attribute roots of metric tag values: the
// access-log ones plus the metadata-exchange peers.
var tagAttributes = append(append([]string(nil), attributes...), "upstream_peer", "downstream_peer")

// TagValue checks the CEL expression of a Telemetry API tagOverrides value
// and returns the canonical form mast-proxy evaluates without CEL
// (metrics.ParseAttr): a string literal, one of Istio's attributes, an
// indexed one (request.headers['x']), each optionally inside string().
// Anything else is refused, naming what is supported.
func TagValue(expr string) (string, error) {
	opts := []cel.EnvOption{}
	for _, a := range tagAttributes {
		opts = append(opts, cel.Variable(a, cel.MapType(cel.StringType, cel.DynType)))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return "", err
	}
	a, iss := env.Compile(expr)
	if iss.Err() != nil {
		return "", fmt.Errorf("invalid CEL: %w", iss.Err())
	}
	canon, ok := tagCanon(a.NativeRep().Expr())
	if !ok {
		return "", fmt.Errorf("%q: %w (supported: %s, optionally inside string())", expr, ErrUnsupported, metrics.AttrNames)
	}
	if _, err := metrics.ParseAttr(canon); err != nil {
		return "", fmt.Errorf("%q: %w: %v", expr, ErrUnsupported, err)
	}
	return canon, nil
}

func tagCanon(e celast.Expr) (string, bool) {
	if s, ok := stringLit(e); ok {
		if strings.ContainsAny(s, `'"\`) {
			return "", false
		}
		return "'" + s + "'", true
	}
	if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == "string" && len(e.AsCall().Args()) == 1 {
		return tagCanon(e.AsCall().Args()[0])
	}
	p := tagPath(e)
	return p, p != ""
}

// tagPath renders request.headers['x'] / upstream_peer.app paths; "" for
// anything else, or a key with quotes, backslashes or brackets.
func tagPath(e celast.Expr) string {
	return exprPath(e, func(p, k string) string {
		if strings.ContainsAny(k, `'"\[]`) {
			return ""
		}
		return p + "['" + k + "']"
	})
}
