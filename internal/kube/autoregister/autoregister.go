// Package autoregister creates a WorkloadEntry for a VM proxy that connects
// asking to join a WorkloadGroup (node metadata AUTO_REGISTER_GROUP, set by
// ISTIO_META_AUTO_REGISTER_GROUP), as istiod's auto-registration does, and
// deletes it a grace period after the proxy's last stream ends.
package autoregister

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Istio's node metadata key and WorkloadEntry annotations.
const (
	MetadataGroup         = "AUTO_REGISTER_GROUP"
	AnnotationGroup       = "istio.io/autoRegistrationGroup"
	AnnotationController  = "istio.io/workloadController"
	AnnotationConnectedAt = "istio.io/connectedAt"
	AnnotationDisconnAt   = "istio.io/disconnectedAt"
	// AnnotationHealthChecks marks an entry whose proxy reports its
	// readiness probe (workloadhealth.AnnotationEnabled).
	AnnotationHealthChecks = "proxy.istio.io/health-checks-enabled"
	// MetadataReadinessProbe is mast-proxy's node metadata saying its agent
	// runs a readiness probe (mast-proxy --readiness-probe).
	MetadataReadinessProbe = "MAST_READINESS_PROBE"
)

var (
	groupsGVR  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadgroups"}
	entriesGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}
)

// Controller registers and unregisters auto-registered workloads.
type Controller struct {
	Dynamic dynamic.Interface
	// Identity names this mastd in istio.io/workloadController.
	Identity string
	// Grace is how long a WorkloadEntry outlives its proxy's last stream
	// (Istio's PILOT_WORKLOAD_ENTRY_GRACE_PERIOD, 10s when zero).
	Grace  time.Duration
	Logger *slog.Logger

	mu      sync.Mutex
	streams map[string]int         // namespace/name -> open streams
	timers  map[string]*time.Timer // pending deletions
}

// Connected registers p when it asks for a group. The caller must only pass
// proxies whose namespace and service account were proven by a client
// certificate (mastd's 15012): registration fails closed otherwise.
func (c *Controller) Connected(ctx context.Context, p *model.Proxy, authenticated bool) {
	group := p.Metadata[MetadataGroup]
	if group == "" {
		return
	}
	log := c.log().With("proxy", p.ID, "group", p.Namespace+"/"+group)
	if !authenticated {
		log.Warn("auto-registration refused: the stream has no workload certificate (connect to the TLS xDS port)")
		return
	}
	name, err := entryName(group, p)
	if err != nil {
		log.Warn("auto-registration refused", "error", err)
		return
	}
	key := p.Namespace + "/" + name
	c.mu.Lock()
	if c.streams == nil {
		c.streams, c.timers = map[string]int{}, map[string]*time.Timer{}
	}
	c.streams[key]++
	if t := c.timers[key]; t != nil {
		t.Stop()
		delete(c.timers, key)
	}
	c.mu.Unlock()
	if err := c.register(context.WithoutCancel(ctx), group, name, p); err != nil {
		log.Warn("auto-registration failed", "error", err)
		return
	}
	log.Info("workload auto-registered", "workloadentry", key)
}

// Disconnected starts the grace period of p's WorkloadEntry when its last
// stream has ended.
func (c *Controller) Disconnected(p *model.Proxy) {
	group := p.Metadata[MetadataGroup]
	if group == "" {
		return
	}
	name, err := entryName(group, p)
	if err != nil {
		return
	}
	key := p.Namespace + "/" + name
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams[key] == 0 {
		return // never registered (refused)
	}
	if c.streams[key]--; c.streams[key] > 0 {
		return
	}
	delete(c.streams, key)
	ctx := context.Background()
	c.annotate(ctx, p.Namespace, name, map[string]any{AnnotationDisconnAt: time.Now().UTC().Format(time.RFC3339Nano)})
	grace := c.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	c.timers[key] = time.AfterFunc(grace, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.streams[key] > 0 || c.timers[key] == nil {
			return // reconnected meanwhile
		}
		delete(c.timers, key)
		err := c.Dynamic.Resource(entriesGVR).Namespace(p.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			c.log().Warn("deleting an auto-registered WorkloadEntry", "workloadentry", key, "error", err)
			return
		}
		c.log().Info("auto-registered workload removed after its grace period", "workloadentry", key)
	})
}

func (c *Controller) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// EntryName is the name of the WorkloadEntry a proxy of group registers.
func EntryName(group string, p *model.Proxy) (string, error) { return entryName(group, p) }

// entryName is Istio's: GROUP-IP (':' of IPv6 replaced), -NETWORK when set.
func entryName(group string, p *model.Proxy) (string, error) {
	if len(p.IPAddresses) == 0 || p.IPAddresses[0] == "" {
		return "", fmt.Errorf("the node has no IP address")
	}
	name := group + "-" + strings.ReplaceAll(p.IPAddresses[0], ":", "-")
	if n := p.Metadata["NETWORK"]; n != "" {
		name += "-" + n
	}
	return name, nil
}

// register creates (or refreshes) the WorkloadEntry from the group's
// template: its spec with the proxy's address, the group's metadata labels
// and annotations merged with the proxy's labels, owned by the group.
func (c *Controller) register(ctx context.Context, group, name string, p *model.Proxy) error {
	wg, err := c.Dynamic.Resource(groupsGVR).Namespace(p.Namespace).Get(ctx, group, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("WorkloadGroup %s/%s: %w", p.Namespace, group, err)
	}
	tmpl, _, _ := unstructured.NestedMap(wg.Object, "spec", "template")
	if tmpl == nil {
		tmpl = map[string]any{}
	}
	sa, _, _ := unstructured.NestedString(tmpl, "serviceAccount")
	if sa == "" {
		sa = "default"
	}
	if sa != p.ServiceAccount && !strings.HasSuffix(p.ServiceAccount, "/sa/"+sa) {
		return fmt.Errorf("WorkloadGroup %s/%s: spec.template.serviceAccount %q, but the proxy's certificate is service account %q", p.Namespace, group, sa, p.ServiceAccount)
	}
	spec := maps.Clone(tmpl)
	spec["address"] = p.IPAddresses[0]
	if n := p.Network(); n != "" {
		spec["network"] = n // as istiod: the proxy's network over the template's
	}
	labels, _, _ := unstructured.NestedStringMap(wg.Object, "spec", "metadata", "labels")
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, p.Labels)
	specLabels := map[string]any{}
	for k, v := range labels {
		specLabels[k] = v
	}
	spec["labels"] = specLabels
	annotations, _, _ := unstructured.NestedStringMap(wg.Object, "spec", "metadata", "annotations")
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AnnotationGroup] = group
	annotations[AnnotationController] = c.Identity
	annotations[AnnotationConnectedAt] = time.Now().UTC().Format(time.RFC3339Nano)
	if p.Metadata[MetadataReadinessProbe] == "true" {
		// Healthy only once the probe passes (istiod: the proxy's
		// PROXY_CONFIG has a readinessProbe).
		annotations[AnnotationHealthChecks] = "true"
	}
	we := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry", "spec": spec}}
	we.SetName(name)
	we.SetNamespace(p.Namespace)
	we.SetLabels(labels)
	we.SetAnnotations(annotations)
	controller := false
	we.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "networking.istio.io/v1", Kind: "WorkloadGroup", Name: group, UID: wg.GetUID(), Controller: &controller}})
	api := c.Dynamic.Resource(entriesGVR).Namespace(p.Namespace)
	_, err = api.Create(ctx, we, metav1.CreateOptions{FieldManager: "mastd"})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := api.Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if cur.GetAnnotations()[AnnotationGroup] != group {
			return fmt.Errorf("WorkloadEntry %s/%s exists and was not auto-registered from %s", p.Namespace, name, group)
		}
		we.SetResourceVersion(cur.GetResourceVersion())
		_, err = api.Update(ctx, we, metav1.UpdateOptions{FieldManager: "mastd"})
	}
	return err
}

// annotate merges annotations into a WorkloadEntry (a JSON merge patch).
func (c *Controller) annotate(ctx context.Context, ns, name string, ann map[string]any) {
	patch := map[string]any{"metadata": map[string]any{"annotations": ann}}
	data, err := (&unstructured.Unstructured{Object: patch}).MarshalJSON()
	if err != nil {
		return
	}
	if _, err := c.Dynamic.Resource(entriesGVR).Namespace(ns).Patch(ctx, name, "application/merge-patch+json", data, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		c.log().Warn("annotating an auto-registered WorkloadEntry", "workloadentry", ns+"/"+name, "error", err)
	}
}
