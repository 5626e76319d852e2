package identity

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Istio's trust-bundle ConfigMap, in every namespace; sidecars mount it.
const (
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertKey       = "root-cert.pem"
)

// RootCertPublisher writes the mesh's trust bundle as the
// istio-ca-root-cert ConfigMap into every namespace, and puts it back when
// someone edits or deletes it. Only one mastd should run it at a time (the
// leader); its writes are idempotent, so a second one is only wasted work.
type RootCertPublisher struct {
	Client kubernetes.Interface
	// Bundle returns the current PEM trust bundle (ca.CA.TrustBundlePEM).
	Bundle func() []byte
	// Resync re-checks every namespace this often, which also picks up a
	// root rotation (1 minute when zero).
	Resync time.Duration
	Logger *slog.Logger
}

// Run publishes until ctx ends.
func (p *RootCertPublisher) Run(ctx context.Context) error {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	resync := p.Resync
	if resync == 0 {
		resync = time.Minute
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer q.ShutDown()
	nsf := informers.NewSharedInformerFactory(p.Client, resync)
	cmf := informers.NewSharedInformerFactoryWithOptions(p.Client, resync, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", RootCertConfigMap).String()
	}))
	enqueueNS := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp == nil {
			q.Add(ns.Name)
		}
	}
	enqueueCM := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			q.Add(cm.Namespace)
		}
	}
	nsInf := nsf.Core().V1().Namespaces().Informer()
	if _, err := nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueNS, UpdateFunc: func(_, n any) { enqueueNS(n) },
	}); err != nil {
		return err
	}
	if _, err := cmf.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, n any) { enqueueCM(n) }, DeleteFunc: enqueueCM,
	}); err != nil {
		return err
	}
	nsf.Start(ctx.Done())
	cmf.Start(ctx.Done())
	defer nsf.Shutdown()
	defer cmf.Shutdown()
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	for {
		ns, quit := q.Get()
		if quit {
			return nil
		}
		if err := p.publish(ctx, ns); err != nil {
			log.Warn("publishing the root certificate", "namespace", ns, "error", err)
			q.AddRateLimited(ns)
		} else {
			q.Forget(ns)
		}
		q.Done(ns)
	}
}

// publish makes namespace's ConfigMap hold the current bundle.
func (p *RootCertPublisher) publish(ctx context.Context, ns string) error {
	bundle := p.Bundle()
	if len(bundle) == 0 {
		return fmt.Errorf("no trust bundle yet")
	}
	cms := p.Client.CoreV1().ConfigMaps(ns)
	cur, err := cms.Get(ctx, RootCertConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCertConfigMap, Namespace: ns,
				Labels: map[string]string{"istio.io/config": "true", "app.kubernetes.io/managed-by": "mastd"}},
			Data: map[string]string{RootCertKey: string(bundle)},
		}, metav1.CreateOptions{})
		// Raced, or the namespace went away or is going (the API server
		// refuses creations in a terminating namespace).
		if apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		return err
	case err != nil:
		return err
	}
	if bytes.Equal([]byte(cur.Data[RootCertKey]), bundle) && len(cur.Data) == 1 {
		return nil
	}
	cur.Data = map[string]string{RootCertKey: string(bundle)}
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
