// Package mixer is Mast's Mixer: it compiles the config.istio.io/v1alpha2
// resources of a configuration snapshot (handlers, instances, rules) into
// a Runtime, and serves istio.mixer.v1.Mixer Check and Report against the
// current one. Subpackages hold the attribute model (attribute), the
// expression language (expr), templates (template) and adapters (adapter,
// adapters/<name>).
package mixer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/adapters"
	"github.com/mast-mesh/mast/internal/mixer/api/policypb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/mixer/expr"
	"github.com/mast-mesh/mast/internal/mixer/template"
)

// Options configure compilation.
type Options struct {
	// ConfigNamespace holds rules that apply to every request (Istio's
	// default config namespace, istio-system); a rule elsewhere applies to
	// requests whose destination.namespace is its namespace.
	ConfigNamespace string
	Env             adapter.Env
	Adapters        map[string]*adapter.Info // nil: adapters.All()
}

type handlerEntry struct {
	fullName string
	info     *adapter.Info
	h        adapter.Handler
}

type instanceEntry struct {
	name, namespace, fullName string
	c                         *template.Compiled
}

type action struct {
	handler   *handlerEntry
	instances []*instanceEntry
}

type rule struct {
	fullName  string
	namespace string
	match     *expr.Expression // nil: always
	actions   []action
}

// Runtime is one compiled configuration. It is immutable but for its
// handlers' own state; Close releases the handlers.
type Runtime struct {
	configNS  string
	rules     []*rule
	handlers  []*handlerEntry
	instances []*instanceEntry
	// Problems are the resources left out, each naming resource and field.
	Problems []error
	metrics  *prometheus.Registry // set by Service.Update
}

// HasRules reports whether any rule is in force.
func (rt *Runtime) HasRules() bool { return rt != nil && len(rt.rules) > 0 }

// Compile builds a runtime from the Mixer resources of snap. A broken
// resource is left out (with a problem naming it) and never disables the
// others; a rule referring to a broken handler or instance is left out.
func Compile(snap *config.Snapshot, opts Options) *Runtime {
	if opts.ConfigNamespace == "" {
		opts.ConfigNamespace = "istio-system"
	}
	if opts.Adapters == nil {
		opts.Adapters = adapters.All()
	}
	if opts.Env.Logger == nil {
		opts.Env.Logger = slog.New(slog.DiscardHandler)
	}
	rt := &Runtime{configNS: opts.ConfigNamespace}
	problem := func(r config.Resource, field string, err error) {
		rt.Problems = append(rt.Problems, fmt.Errorf("%s: %s/%s/%s: %s: %w", r.Source, r.Kind.Kind, r.Namespace, r.Name, field, err))
	}
	vocab := attribute.DefaultVocabulary()
	for _, r := range snap.List(config.MixerAttributeManifest) {
		for name, a := range r.Spec.(*policypb.AttributeManifest).GetAttributes() {
			vocab[name] = a.GetValueType()
		}
	}
	comp, err := expr.NewCompiler(vocab)
	if err != nil {
		rt.Problems = append(rt.Problems, err)
		return rt
	}

	type key struct{ name, ns string }
	handlers := map[key]*handlerEntry{}
	instances := map[key]*instanceEntry{}
	addHandler := func(r config.Resource, adapterName, kind string, params *structpb.Struct) {
		info := opts.Adapters[adapterName]
		if info == nil {
			problem(r, "compiledAdapter", fmt.Errorf("unknown adapter %q", adapterName))
			return
		}
		if params == nil {
			params = &structpb.Struct{}
		}
		full := r.Name + "." + kind + "." + r.Namespace
		env := opts.Env
		env.Logger = opts.Env.Logger.With("handler", full)
		h, err := info.New(env, full, params)
		if err != nil {
			problem(r, "params", err)
			return
		}
		e := &handlerEntry{fullName: full, info: info, h: h}
		handlers[key{r.Name, r.Namespace}] = e
		rt.handlers = append(rt.handlers, e)
	}
	addInstance := func(r config.Resource, tmplName, kind string, params *structpb.Struct) {
		t := template.All()[tmplName]
		if t == nil {
			problem(r, "compiledTemplate", fmt.Errorf("unknown template %q", tmplName))
			return
		}
		full := r.Name + "." + kind + "." + r.Namespace
		c, err := template.Compile(comp, t, full, params)
		if err != nil {
			problem(r, "params", err)
			return
		}
		e := &instanceEntry{name: r.Name, namespace: r.Namespace, fullName: full, c: c}
		instances[key{r.Name, r.Namespace}] = e
		rt.instances = append(rt.instances, e)
	}
	for _, r := range snap.List(config.MixerHandler) {
		h := r.Spec.(*policypb.Handler)
		addHandler(r, h.GetCompiledAdapter(), "handler", h.GetParams())
	}
	for _, name := range config.MixerAdapterKinds() {
		for _, r := range snap.List(config.Kind{Group: config.MixerGroup, Kind: name}) {
			s, _ := r.Spec.(*structpb.Struct)
			addHandler(r, name, name, s)
		}
	}
	for _, r := range snap.List(config.MixerInstance) {
		in := r.Spec.(*policypb.Instance)
		addInstance(r, in.GetCompiledTemplate(), "instance", in.GetParams())
	}
	for _, name := range config.MixerTemplateKinds() {
		for _, r := range snap.List(config.Kind{Group: config.MixerGroup, Kind: name}) {
			s, _ := r.Spec.(*structpb.Struct)
			addInstance(r, name, name, s)
		}
	}
	for _, r := range snap.List(config.MixerRule) {
		spec := r.Spec.(*policypb.Rule)
		ru := &rule{fullName: r.Name + ".rule." + r.Namespace, namespace: r.Namespace}
		ok := true
		if m := strings.TrimSpace(spec.GetMatch()); m != "" {
			e, err := comp.Compile(m)
			switch {
			case err != nil:
				problem(r, "spec.match", err)
				ok = false
			case e.Type() != policypb.ValueType_BOOL:
				problem(r, "spec.match", fmt.Errorf("result type %s, want BOOL", e.Type()))
				ok = false
			}
			ru.match = e
		}
		for i, a := range spec.GetActions() {
			field := fmt.Sprintf("spec.actions[%d]", i)
			hn, hk, hns := config.MixerRef(a.GetHandler(), r.Namespace)
			he := handlers[key{hn, hns}]
			if he == nil || (hk != "" && hk != "handler" && hk != he.info.Name) {
				problem(r, field+".handler", fmt.Errorf("%q: no such handler (or it was left out)", a.GetHandler()))
				ok = false
				continue
			}
			act := action{handler: he}
			for j, ref := range a.GetInstances() {
				in, ik, ins := config.MixerRef(ref, r.Namespace)
				ie := instances[key{in, ins}]
				if ie == nil || (ik != "" && ik != "instance" && ik != ie.c.Template.Name) {
					problem(r, fmt.Sprintf("%s.instances[%d]", field, j), fmt.Errorf("%q: no such instance (or it was left out)", ref))
					ok = false
					continue
				}
				if !he.info.Supports(ie.c.Template.Name) {
					problem(r, fmt.Sprintf("%s.instances[%d]", field, j), fmt.Errorf("%q: adapter %s does not take %s instances", ref, he.info.Name, ie.c.Template.Name))
					ok = false
					continue
				}
				act.instances = append(act.instances, ie)
			}
			ru.actions = append(ru.actions, act)
		}
		if ok {
			rt.rules = append(rt.rules, ru)
		}
	}
	sort.Slice(rt.rules, func(i, j int) bool { return rt.rules[i].fullName < rt.rules[j].fullName })
	return rt
}

// Close releases every handler.
func (rt *Runtime) Close() error {
	var errs []error
	for _, h := range rt.handlers {
		if err := h.h.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.fullName, err))
		}
	}
	return errors.Join(errs...)
}

// applies evaluates a rule's scope and match for one bag.
func (rt *Runtime) applies(ru *rule, bag attribute.Bag, refs *expr.Refs, log *slog.Logger) bool {
	if ru.namespace != rt.configNS {
		ns, ok := bag.Get("destination.namespace")
		refs.Add("destination.namespace", ok)
		if !ok || ns != ru.namespace {
			return false
		}
	}
	if ru.match == nil {
		return true
	}
	ok, err := ru.match.EvalBool(bag, refs)
	if err != nil {
		// As Istio: a match that cannot be evaluated (an absent attribute
		// without a | default) does not match.
		log.Debug("rule match not evaluated", "rule", ru.fullName, "err", err)
		return false
	}
	return ok
}

// QuotaRequest is one quota asked for in a Check.
type QuotaRequest struct {
	Amount     int64
	BestEffort bool
}

// QuotaOutcome is one quota's answer.
type QuotaOutcome struct {
	Status        adapter.Status
	Granted       int64
	ValidDuration time.Duration
	Refs          []expr.Ref
}

// CheckOutcome is a Check's answer.
type CheckOutcome struct {
	Status        adapter.Status
	ValidDuration time.Duration
	ValidUseCount int32
	Refs          []expr.Ref
	Quotas        map[string]QuotaOutcome
}

// DefaultValidity is how long an answer with no adapter opinion holds.
const (
	DefaultValidDuration = time.Minute
	DefaultValidUseCount = 10000
)

// Check runs the check-variety actions of every applicable rule and the
// quotas asked for. The first failing status wins; validity is the
// smallest any handler gave.
func (rt *Runtime) Check(ctx context.Context, bag attribute.Bag, quotas map[string]QuotaRequest, dedupID string, log *slog.Logger) CheckOutcome {
	out := CheckOutcome{ValidDuration: DefaultValidDuration, ValidUseCount: DefaultValidUseCount}
	var refs expr.Refs
	narrow := func(d time.Duration, n int32) {
		if d > 0 && d < out.ValidDuration {
			out.ValidDuration = d
		}
		if n > 0 && n < out.ValidUseCount {
			out.ValidUseCount = n
		}
	}
	for _, ru := range rt.rules {
		if out.Status.Code != codes.OK {
			break
		}
		if !rt.applies(ru, bag, &refs, log) {
			continue
		}
		for _, a := range ru.actions {
			ch, ok := a.handler.h.(adapter.Checker)
			if !ok {
				continue
			}
			for _, ie := range a.instances {
				if ie.c.Template.Variety != template.Check {
					continue
				}
				inst, err := ie.c.Eval(bag, &refs)
				if err != nil {
					out.Status = adapter.Status{Code: codes.InvalidArgument, Message: a.handler.fullName + ":" + err.Error()}
					narrow(time.Second, 1)
					break
				}
				res, err := ch.HandleCheck(ctx, inst)
				if err != nil {
					res = adapter.CheckResult{Status: adapter.Status{Code: codes.Internal, Message: err.Error()}, ValidDuration: time.Second, ValidUseCount: 1}
				}
				narrow(res.ValidDuration, res.ValidUseCount)
				if res.Status.Code != codes.OK {
					out.Status = adapter.Status{Code: res.Status.Code, Message: a.handler.fullName + ":" + res.Status.Message}
					break
				}
			}
			if out.Status.Code != codes.OK {
				break
			}
		}
	}
	out.Refs = refs.List()
	if len(quotas) > 0 {
		out.Quotas = make(map[string]QuotaOutcome, len(quotas))
		names := make([]string, 0, len(quotas))
		for n := range quotas {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out.Quotas[n] = rt.quota(ctx, bag, n, quotas[n], dedupID, log)
		}
	}
	return out
}

// quota dispatches one named quota to every applicable rule's quota
// handlers with an instance of that name; the smallest grant wins.
func (rt *Runtime) quota(ctx context.Context, bag attribute.Bag, name string, q QuotaRequest, dedupID string, log *slog.Logger) QuotaOutcome {
	var refs expr.Refs
	out := QuotaOutcome{Granted: q.Amount, ValidDuration: DefaultValidDuration}
	dispatched := false
	for _, ru := range rt.rules {
		if !rt.applies(ru, bag, &refs, log) {
			continue
		}
		for _, a := range ru.actions {
			qh, ok := a.handler.h.(adapter.Quotaer)
			if !ok {
				continue
			}
			for _, ie := range a.instances {
				if ie.c.Template.Variety != template.Quota || (ie.name != name && ie.fullName != name) {
					continue
				}
				inst, err := ie.c.Eval(bag, &refs)
				if err != nil {
					out.Status = adapter.Status{Code: codes.InvalidArgument, Message: a.handler.fullName + ":" + err.Error()}
					out.Granted = 0
					continue
				}
				dispatched = true
				res, err := qh.HandleQuota(ctx, inst, adapter.QuotaArgs{DeduplicationID: dedupID, Amount: q.Amount, BestEffort: q.BestEffort})
				if err != nil {
					res = adapter.QuotaResult{Status: adapter.Status{Code: codes.Unavailable, Message: err.Error()}}
				}
				if res.Granted < out.Granted {
					out.Granted = res.Granted
				}
				if res.ValidDuration > 0 && res.ValidDuration < out.ValidDuration {
					out.ValidDuration = res.ValidDuration
				}
				if res.Status.Code != codes.OK && out.Status.Code == codes.OK {
					out.Status = adapter.Status{Code: res.Status.Code, Message: a.handler.fullName + ":" + res.Status.Message}
				}
			}
		}
	}
	if out.Status.Code == codes.OK && out.Granted < q.Amount && !q.BestEffort {
		out.Status = adapter.Status{Code: codes.ResourceExhausted, Message: "Quota is exhausted for: " + name}
	}
	_ = dispatched
	out.Refs = refs.List()
	return out
}

// Report sends report-variety instances of every applicable rule to their
// handlers, one call per handler per report.
func (rt *Runtime) Report(ctx context.Context, bags []attribute.Bag, log *slog.Logger) {
	batches := map[*handlerEntry][]*template.Instance{}
	for _, bag := range bags {
		for _, ru := range rt.rules {
			if !rt.applies(ru, bag, nil, log) {
				continue
			}
			for _, a := range ru.actions {
				if _, ok := a.handler.h.(adapter.Reporter); !ok {
					continue
				}
				for _, ie := range a.instances {
					if ie.c.Template.Variety != template.Report {
						continue
					}
					inst, err := ie.c.Eval(bag, nil)
					if err != nil {
						log.Debug("report instance not built", "instance", ie.fullName, "err", err)
						continue
					}
					batches[a.handler] = append(batches[a.handler], inst)
				}
			}
		}
	}
	for h, insts := range batches {
		if err := h.h.(adapter.Reporter).HandleReport(ctx, insts); err != nil {
			log.Warn("report failed", "handler", h.fullName, "err", err)
		}
	}
}
