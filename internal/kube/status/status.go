// Package status writes the status of Istio custom resources back to the API
// server, as istiod's status controller does: a Reconciled condition (True
// when the resource is in force, False with the validation error when it is
// rejected) and Istio's validationMessages from internal/analyze, so that
// `kubectl get vs -o yaml` shows why a resource does nothing.
package status

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/mast-mesh/mast/internal/analyze"
	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/kubestore"
)

// ConditionReconciled is the condition type written on every resource.
const ConditionReconciled = "Reconciled"

// Cluster is the Kubernetes state the analyzers read besides configuration.
type Cluster struct {
	Services   []*corev1.Service
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
}

// Config configures a Writer.
type Config struct {
	Dynamic dynamic.Interface
	Store   *kubestore.Store
	// Cluster returns the cluster's Services, Pods and Namespaces (nil: none).
	Cluster func() Cluster
	// Settle is how long the writer waits after a change for more changes
	// before it writes (default 200ms).
	Settle time.Duration
	Logger *slog.Logger
}

// Writer keeps the status of every resource of the store current. Run it
// only on the elected leader.
type Writer struct{ cfg Config }

// New returns a writer.
func New(cfg Config) *Writer {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Settle == 0 {
		cfg.Settle = 200 * time.Millisecond
	}
	return &Writer{cfg: cfg}
}

// Run writes statuses after every change of the store until ctx ends.
func (w *Writer) Run(ctx context.Context) error {
	for {
		objs, changed := w.cfg.Store.Objects()
		w.sync(ctx, objs)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(w.cfg.Settle):
		}
	}
}

// Desired computes the status of every object: what validation and the
// analyzers say of it. It is a pure function of its inputs.
func Desired(objs []*kubestore.Object, snap *config.Snapshot, cluster Cluster) map[string]map[string]any {
	in := analyze.NewInput()
	in.Config = snap
	for _, o := range objs {
		in.Problems = append(in.Problems, o.Problems...)
	}
	in.Services, in.Pods, in.Namespaces = analyzeCluster(cluster)
	bySource := map[string][]analyze.Message{}
	for _, m := range analyze.Analyze(in) {
		src := m.Resource.File
		if !strings.HasPrefix(src, kubestore.SourcePrefix) {
			k := config.Kind{Kind: m.Resource.Kind}
			for _, kk := range config.Kinds() {
				if kk.Kind == m.Resource.Kind {
					k = kk
				}
			}
			src = kubestore.SourceName(k, m.Resource.Namespace, m.Resource.Name)
		}
		bySource[src] = append(bySource[src], m)
	}
	out := make(map[string]map[string]any, len(objs))
	for _, o := range objs {
		src := kubestore.SourceName(o.Kind, o.Namespace, o.Name)
		out[src] = statusOf(o, bySource[src])
	}
	return out
}

func statusOf(o *kubestore.Object, msgs []analyze.Message) map[string]any {
	cond := map[string]any{"type": ConditionReconciled, "status": "True", "reason": "Accepted", "message": "in force"}
	var errs []string
	for _, p := range o.Problems {
		if p.Severity == config.Error {
			text := p.Message
			if p.Field != "" {
				text = p.Field + ": " + text
			}
			errs = append(errs, text)
		}
	}
	if len(errs) > 0 {
		cond["status"], cond["reason"], cond["message"] = "False", "Invalid", "rejected by validation: "+strings.Join(errs, "; ")
	} else if len(msgs) > 0 {
		texts := make([]string, len(msgs))
		for i, m := range msgs {
			texts[i] = m.Type.Code + " " + m.Text
		}
		cond["message"] = "in force; analysis: " + strings.Join(texts, "; ")
	}
	st := map[string]any{
		"conditions":         []any{cond},
		"observedGeneration": o.Generation,
	}
	if len(msgs) > 0 {
		vms := make([]any, len(msgs))
		for i, m := range msgs {
			vms[i] = map[string]any{
				"type":             map[string]any{"code": m.Type.Code, "name": m.Type.Name},
				"level":            strings.ToUpper(m.Type.Level.String()),
				"documentationUrl": m.DocumentationURL(),
			}
		}
		st["validationMessages"] = vms
	}
	return st
}

func (w *Writer) sync(ctx context.Context, objs []*kubestore.Object) {
	var cluster Cluster
	if w.cfg.Cluster != nil {
		cluster = w.cfg.Cluster()
	}
	want := Desired(objs, w.cfg.Store.Snapshot(), cluster)
	sort.Slice(objs, func(i, j int) bool {
		return kubestore.SourceName(objs[i].Kind, objs[i].Namespace, objs[i].Name) < kubestore.SourceName(objs[j].Kind, objs[j].Namespace, objs[j].Name)
	})
	for _, o := range objs {
		st := want[kubestore.SourceName(o.Kind, o.Namespace, o.Name)]
		if sameStatus(o.Status, st) {
			continue
		}
		if err := w.write(ctx, o, st); err != nil && ctx.Err() == nil {
			w.cfg.Logger.Warn("status not written", "resource", o.Kind.Kind+"/"+o.Namespace+"/"+o.Name, "err", err)
		}
	}
}

func (w *Writer) write(ctx context.Context, o *kubestore.Object, st map[string]any) error {
	ri := w.cfg.Dynamic.Resource(kubestore.GVR(o.Kind)).Namespace(o.Namespace)
	for range 3 {
		u, err := ri.Get(ctx, o.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		now := metav1.Now().UTC().Format(time.RFC3339)
		for _, c := range st["conditions"].([]any) {
			c.(map[string]any)["lastTransitionTime"] = now
		}
		u.Object["status"] = st
		_, err = ri.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: "mastd"})
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("status of %s/%s: conflicts persisted", o.Namespace, o.Name)
}

// sameStatus compares a written status with a desired one, ignoring times.
func sameStatus(have, want map[string]any) bool {
	if have == nil {
		return false
	}
	return reflect.DeepEqual(normalize(have), normalize(want))
}

func normalize(st map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range st {
		if k == "conditions" {
			var cs []any
			if list, ok := v.([]any); ok {
				for _, c := range list {
					if m, ok := c.(map[string]any); ok {
						m2 := map[string]any{}
						for ck, cv := range m {
							if ck != "lastTransitionTime" && ck != "lastProbeTime" {
								m2[ck] = fmt.Sprint(cv)
							}
						}
						cs = append(cs, m2)
					}
				}
			}
			out[k] = cs
			continue
		}
		out[k] = fmt.Sprintf("%v", v)
	}
	return out
}

func analyzeCluster(c Cluster) ([]*analyze.Service, []*analyze.Pod, []*analyze.Object) {
	var svcs []*analyze.Service
	for _, s := range c.Services {
		as := &analyze.Service{Object: object("Service", s.ObjectMeta), Type: string(s.Spec.Type), Selector: s.Spec.Selector}
		for _, p := range s.Spec.Ports {
			tp := ""
			if p.TargetPort.String() != "0" {
				tp = p.TargetPort.String()
			}
			as.Ports = append(as.Ports, analyze.ServicePort{Name: p.Name, Port: p.Port, TargetPort: tp, Protocol: string(p.Protocol), AppProtocol: p.AppProtocol})
		}
		svcs = append(svcs, as)
	}
	var pods []*analyze.Pod
	for _, p := range c.Pods {
		ap := &analyze.Pod{Object: object("Pod", p.ObjectMeta), NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork}
		for _, ct := range p.Spec.Containers {
			ap.Containers = append(ap.Containers, analyze.Container{Name: ct.Name, Image: ct.Image})
		}
		for _, ct := range p.Spec.InitContainers {
			ap.InitContainers = append(ap.InitContainers, analyze.Container{Name: ct.Name, Image: ct.Image})
		}
		pods = append(pods, ap)
	}
	var nss []*analyze.Object
	for _, n := range c.Namespaces {
		o := object("Namespace", n.ObjectMeta)
		o.Namespace = ""
		nss = append(nss, &o)
	}
	return svcs, pods, nss
}

func object(kind string, m metav1.ObjectMeta) analyze.Object {
	return analyze.Object{Kind: kind, Namespace: m.Namespace, Name: m.Name, Labels: m.Labels, Annotations: m.Annotations}
}
