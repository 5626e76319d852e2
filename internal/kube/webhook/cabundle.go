package webhook

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	admv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
)

// CABundlePatcher keeps the caBundle of every webhook in the named
// ValidatingWebhookConfigurations and MutatingWebhookConfigurations equal to
// the mesh's trust bundle, as istiod's webhook controllers do: the API server
// can then verify the webhooks' certificate, which the mesh CA signs. It
// patches a configuration when it appears, whenever someone changes it, and
// on every resync (which picks up a root rotation). Only one mastd needs to
// run it (the leader); its writes are idempotent.
type CABundlePatcher struct {
	Client kubernetes.Interface
	// Validating and Mutating name the configurations to keep patched;
	// configurations with other names are left alone.
	Validating, Mutating []string
	// Bundle returns the current PEM trust bundle (ca.CA.TrustBundlePEM).
	Bundle func() []byte
	// Resync re-checks every configuration this often (1 minute when zero).
	Resync time.Duration
	Logger *slog.Logger
}

type webhookKey struct {
	mutating bool
	name     string
}

// Run patches until ctx ends.
func (p *CABundlePatcher) Run(ctx context.Context) error {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	resync := p.Resync
	if resync == 0 {
		resync = time.Minute
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[webhookKey]())
	defer q.ShutDown()
	f := informers.NewSharedInformerFactory(p.Client, resync)
	enqueue := func(obj any) {
		switch c := obj.(type) {
		case *admv1.ValidatingWebhookConfiguration:
			if slices.Contains(p.Validating, c.Name) {
				q.Add(webhookKey{name: c.Name})
			}
		case *admv1.MutatingWebhookConfiguration:
			if slices.Contains(p.Mutating, c.Name) {
				q.Add(webhookKey{mutating: true, name: c.Name})
			}
		}
	}
	handler := cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) }}
	if len(p.Validating) > 0 {
		if _, err := f.Admissionregistration().V1().ValidatingWebhookConfigurations().Informer().AddEventHandler(handler); err != nil {
			return err
		}
	}
	if len(p.Mutating) > 0 {
		if _, err := f.Admissionregistration().V1().MutatingWebhookConfigurations().Informer().AddEventHandler(handler); err != nil {
			return err
		}
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	for {
		k, quit := q.Get()
		if quit {
			return nil
		}
		if err := p.patch(ctx, k); err != nil {
			log.Warn("patching a webhook configuration's caBundle", "name", k.name, "mutating", k.mutating, "error", err)
			q.AddRateLimited(k)
		} else {
			q.Forget(k)
		}
		q.Done(k)
	}
}

// patch sets every webhook's caBundle in one configuration, when any differs.
func (p *CABundlePatcher) patch(ctx context.Context, k webhookKey) error {
	bundle := p.Bundle()
	if len(bundle) == 0 {
		return fmt.Errorf("no trust bundle yet")
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if k.mutating {
			return patchConfig(ctx, p.Client.AdmissionregistrationV1().MutatingWebhookConfigurations(), k.name, bundle,
				func(c *admv1.MutatingWebhookConfiguration) (out []*admv1.WebhookClientConfig) {
					for i := range c.Webhooks {
						out = append(out, &c.Webhooks[i].ClientConfig)
					}
					return out
				})
		}
		return patchConfig(ctx, p.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations(), k.name, bundle,
			func(c *admv1.ValidatingWebhookConfiguration) (out []*admv1.WebhookClientConfig) {
				for i := range c.Webhooks {
					out = append(out, &c.Webhooks[i].ClientConfig)
				}
				return out
			})
	})
	if apierrors.IsNotFound(err) { // deleted meanwhile: nothing to keep patched
		return nil
	}
	return err
}

// webhookConfigs is the part of a Validating- or
// MutatingWebhookConfigurations client patchConfig uses.
type webhookConfigs[C any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*C, error)
	Update(ctx context.Context, c *C, opts metav1.UpdateOptions) (*C, error)
}

// patchConfig sets the caBundle of each of a configuration's webhooks
// (clientConfigs lists them) and updates it when any changed.
func patchConfig[C any](ctx context.Context, api webhookConfigs[C], name string, bundle []byte,
	clientConfigs func(*C) []*admv1.WebhookClientConfig) error {
	c, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	changed := false
	for _, cc := range clientConfigs(c) {
		changed = setBundle(cc, bundle) || changed
	}
	if changed {
		_, err = api.Update(ctx, c, metav1.UpdateOptions{FieldManager: "mastd"})
	}
	return err
}

func setBundle(cc *admv1.WebhookClientConfig, bundle []byte) bool {
	if bytes.Equal(cc.CABundle, bundle) {
		return false
	}
	cc.CABundle = bytes.Clone(bundle)
	return true
}
