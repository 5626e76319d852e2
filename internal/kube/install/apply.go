package install

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager owns the fields `mast install` applies.
const FieldManager = "mast-install"

// Client applies and deletes rendered objects.
type Client struct {
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
}

// NewClient connects to the cluster of rc.
func NewClient(rc *rest.Config) (*Client, error) {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &Client{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}, nil
}

func (c *Client) resource(o Object) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		c.mapper.Reset() // a CRD applied a moment ago
		if m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return nil, fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
		}
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return c.dyn.Resource(m.Resource), nil
}

// Apply server-side applies every object, in order, as FieldManager
// (forcing ownership of the fields it sets, as `kubectl apply
// --server-side --force-conflicts`); applying twice changes nothing. With
// dryRun the API server validates and admits each object without storing
// it. It prints one line per object to w.
func (c *Client) Apply(ctx context.Context, objs []Object, dryRun bool, w io.Writer) error {
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}
	suffix := ""
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
		suffix = " (server dry run)"
	}
	var createdNS string
	for _, o := range objs {
		if dryRun && o.GetKind() == "Namespace" {
			// Namespaced objects of a dry run need the namespace to exist.
			createdNS = o.GetName()
		}
		data, err := json.Marshal(o.Object)
		if err != nil {
			return err
		}
		r, err := c.resource(o)
		if err != nil {
			if dryRun && o.GetKind() != "CustomResourceDefinition" && meta.IsNoMatchError(err) {
				return fmt.Errorf("%s: %w", o.Source, err)
			}
			return fmt.Errorf("%s: %w", o.Source, err)
		}
		_, err = r.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts)
		if err != nil {
			if dryRun && apierrors.IsNotFound(err) && o.GetNamespace() == createdNS && createdNS != "" {
				fmt.Fprintf(w, "%s/%s: not checked: namespace %s does not exist yet\n", o.GetKind(), o.GetName(), createdNS)
				continue
			}
			return fmt.Errorf("apply %s %s/%s (%s): %w", o.GetKind(), o.GetNamespace(), o.GetName(), o.Source, err)
		}
		fmt.Fprintf(w, "%s/%s applied%s\n", o.GetKind(), o.GetName(), suffix)
		if o.GetKind() == "CustomResourceDefinition" && !dryRun {
			c.mapper.Reset()
		}
	}
	return nil
}

// Delete removes the objects in reverse order, leaving CRDs (and with them
// every Istio resource) and the namespace unless purge is set. Objects
// already gone are skipped.
func (c *Client) Delete(ctx context.Context, objs []Object, purge bool, w io.Writer) error {
	policy := metav1.DeletePropagationBackground
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		if !purge && (o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "Namespace") {
			continue
		}
		r, err := c.resource(o)
		if meta.IsNoMatchError(err) {
			continue
		}
		if err != nil {
			return err
		}
		err = r.Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("delete %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		fmt.Fprintf(w, "%s/%s deleted\n", o.GetKind(), o.GetName())
	}
	return nil
}

// WaitEstablished waits until the applied CRDs serve their kinds.
func (c *Client) WaitEstablished(ctx context.Context, objs []Object) error {
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		r, err := c.resource(o)
		if err != nil {
			return err
		}
		for {
			u, err := r.Get(ctx, o.GetName(), metav1.GetOptions{})
			if err == nil && established(u.Object) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s not established: %w", o.GetName(), ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	c.mapper.Reset()
	return nil
}

func established(obj map[string]any) bool {
	st, _ := obj["status"].(map[string]any)
	conds, _ := st["conditions"].([]any)
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }
