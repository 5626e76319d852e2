package config

import (
	"regexp"
	"strings"
	"sync"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/adapters"
	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/mixer/api/policypb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/mixer/expr"
	"github.com/mast-mesh/mast/internal/mixer/template"
)

// mixerCompiler compiles expressions against Istio's default attribute
// vocabulary; built once, immutable.
var mixerCompiler = sync.OnceValues(func() (*expr.Compiler, error) {
	return expr.NewCompiler(attribute.DefaultVocabulary())
})

// mixer validates the Mixer kinds: adapter and template params are decoded
// and every expression is compiled and type-checked against Istio's
// attribute vocabulary, so that errors name the resource and field.
func (v *validator) mixer() {
	c, err := mixerCompiler()
	if err != nil {
		v.errorf("spec", "%v", err)
		return
	}
	switch spec := v.r.Spec.(type) {
	case *policypb.Handler:
		v.mixerHandler(spec)
	case *policypb.Instance:
		name := spec.GetCompiledTemplate()
		if spec.GetTemplate() != "" {
			v.errorf("spec.template", "out-of-process templates are not supported; use compiledTemplate")
			return
		}
		if name == "" {
			v.errorf("spec.compiledTemplate", "required")
			return
		}
		v.mixerTemplate("spec.compiledTemplate", name, "spec.params", spec.GetParams(), c)
	case *policypb.Rule:
		v.mixerRule(spec, c)
	case *policypb.AttributeManifest:
		for name, a := range spec.GetAttributes() {
			if a.GetValueType() == policypb.ValueType_VALUE_TYPE_UNSPECIFIED {
				v.errorf(pathKey("spec.attributes", name)+".valueType", "required")
			}
		}
	case *clientpb.QuotaSpec:
		v.quotaSpec(spec)
	case *clientpb.QuotaSpecBinding:
		if len(spec.GetServices()) == 0 {
			v.errorf("spec.services", "required")
		}
		for i, s := range spec.GetServices() {
			if s.GetName() == "" && s.GetService() == "" {
				v.errorf(pathIndex("spec.services", i), "name or service is required")
			}
		}
		if len(spec.GetQuotaSpecs()) == 0 {
			v.errorf("spec.quotaSpecs", "required")
		}
		for i, q := range spec.GetQuotaSpecs() {
			if q.GetName() == "" {
				v.errorf(pathIndex("spec.quotaSpecs", i)+".name", "required")
			}
		}
	case *structpb.Struct:
		if _, ok := adapters.All()[v.r.Kind.Kind]; ok {
			v.mixerAdapter("kind", v.r.Kind.Kind, "spec", spec)
			return
		}
		v.mixerTemplate("kind", v.r.Kind.Kind, "spec", spec, c)
	}
}

func (v *validator) mixerHandler(h *policypb.Handler) {
	if h.GetAdapter() != "" {
		v.errorf("spec.adapter", "out-of-process adapters are not supported; use compiledAdapter (one of %s)", strings.Join(adapters.Names(), ", "))
		return
	}
	if h.GetCompiledAdapter() == "" {
		v.errorf("spec.compiledAdapter", "required")
		return
	}
	v.mixerAdapter("spec.compiledAdapter", h.GetCompiledAdapter(), "spec.params", h.GetParams())
}

func (v *validator) mixerAdapter(nameField, name, paramsField string, params *structpb.Struct) {
	info, ok := adapters.All()[name]
	if !ok {
		v.errorf(nameField, "unknown adapter %q; Mast compiles in %s", name, strings.Join(adapters.Names(), ", "))
		return
	}
	if params == nil {
		params = &structpb.Struct{}
	}
	if err := info.Validate(params); err != nil {
		v.paramsError(paramsField, err)
	}
}

// paramsError reports an adapter's or template's "params.a.b: message"
// error at the field it names.
func (v *validator) paramsError(paramsField string, err error) {
	msg, field := err.Error(), paramsField
	if rest, ok := strings.CutPrefix(msg, "params."); ok {
		if f, m, ok := strings.Cut(rest, ": "); ok {
			field, msg = paramsField+"."+f, m
		}
	} else {
		msg = strings.TrimPrefix(msg, "params: ")
	}
	v.errorf(field, "%s", msg)
}

func (v *validator) mixerTemplate(nameField, name, paramsField string, params *structpb.Struct, c *expr.Compiler) {
	t, ok := template.All()[name]
	if !ok {
		v.errorf(nameField, "unknown template %q; Mast compiles in %s", name, strings.Join(template.Names(), ", "))
		return
	}
	if _, err := template.Compile(c, t, v.r.Name, params); err != nil {
		v.paramsError(paramsField, err)
	}
}

func (v *validator) mixerRule(r *policypb.Rule, c *expr.Compiler) {
	if m := r.GetMatch(); m != "" {
		e, err := c.Compile(m)
		switch {
		case err != nil:
			v.errorf("spec.match", "%q: %v", m, err)
		case e.Type() != policypb.ValueType_BOOL:
			v.errorf("spec.match", "%q: result type %s, want BOOL", m, e.Type())
		}
	}
	for i, a := range r.GetActions() {
		p := pathIndex("spec.actions", i)
		if a.GetHandler() == "" {
			v.errorf(p+".handler", "required")
		}
		if len(a.GetInstances()) == 0 {
			v.errorf(p+".instances", "required")
		}
	}
	ops := func(field string, list []*policypb.Rule_HeaderOperationTemplate) {
		for i, o := range list {
			p := pathIndex(field, i)
			if o.GetName() == "" {
				v.errorf(p+".name", "required")
			}
			for j, val := range o.GetValues() {
				e, err := c.Compile(val)
				switch {
				case err != nil:
					v.errorf(pathIndex(p+".values", j), "%q: %v", val, err)
				case e.Type() != policypb.ValueType_STRING:
					v.errorf(pathIndex(p+".values", j), "%q: result type %s, want STRING", val, e.Type())
				}
			}
		}
	}
	ops("spec.requestHeaderOperations", r.GetRequestHeaderOperations())
	ops("spec.responseHeaderOperations", r.GetResponseHeaderOperations())
}

func (v *validator) quotaSpec(q *clientpb.QuotaSpec) {
	for i, r := range q.GetRules() {
		p := pathIndex("spec.rules", i)
		for j, m := range r.GetMatch() {
			for attr, sm := range m.GetClause() {
				f := pathKey(pathIndex(p+".match", j)+".clause", attr)
				if re := sm.GetRegex(); re != "" {
					if _, err := regexp.Compile(re); err != nil {
						v.errorf(f+".regex", "%v", err)
					}
				}
			}
		}
		for j, qq := range r.GetQuotas() {
			qp := pathIndex(p+".quotas", j)
			if qq.GetQuota() == "" {
				v.errorf(qp+".quota", "required")
			}
			if qq.GetCharge() < 0 {
				v.errorf(qp+".charge", "%d is negative", qq.GetCharge())
			}
		}
	}
}

// MixerRef splits a rule's reference to a handler or instance ("name",
// "name.kind" or "name.kind.namespace") and resolves the namespace
// against the rule's own.
func MixerRef(ref, ruleNamespace string) (name, kind, namespace string) {
	parts := strings.SplitN(ref, ".", 3)
	name, namespace = parts[0], ruleNamespace
	if len(parts) > 1 {
		kind = parts[1]
	}
	if len(parts) > 2 {
		namespace = parts[2]
	}
	return name, kind, namespace
}
