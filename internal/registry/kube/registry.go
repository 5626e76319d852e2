package kube

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/mast-mesh/mast/internal/registry"
)

// Config configures the Kubernetes registry.
type Config struct {
	Client  kubernetes.Interface
	Options Options
	// Resync is the informers' resync period (0: none; the watch keeps them current).
	Resync time.Duration
	// OnChange is called, from one goroutine, after the snapshot changed.
	OnChange func()
	Logger   *slog.Logger
}

// Registry is the Kubernetes registry as a registry.Registry. Informers keep
// a cache of the cluster; every change marks the snapshot dirty and one
// goroutine rebuilds it, so bursts of events cost one rebuild.
type Registry struct {
	cfg     Config
	factory informers.SharedInformerFactory
	svcs    cache.SharedIndexInformer
	slcs    cache.SharedIndexInformer
	pods    cache.SharedIndexInformer
	nodes   cache.SharedIndexInformer
	nss     cache.SharedIndexInformer
	dirty   chan struct{}

	mu   sync.Mutex
	snap *registry.Snapshot
}

var _ registry.Registry = (*Registry)(nil)

// New returns a registry that starts watching when Run is called. Its
// snapshot is empty until the informers have synced.
func New(cfg Config) (*Registry, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("kube registry: no client")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := informers.NewSharedInformerFactory(cfg.Client, cfg.Resync)
	r := &Registry{
		cfg:     cfg,
		factory: f,
		svcs:    f.Core().V1().Services().Informer(),
		slcs:    f.Discovery().V1().EndpointSlices().Informer(),
		pods:    f.Core().V1().Pods().Informer(),
		nodes:   f.Core().V1().Nodes().Informer(),
		nss:     f.Core().V1().Namespaces().Informer(),
		dirty:   make(chan struct{}, 1),
		snap:    &registry.Snapshot{Endpoints: map[string][]*registry.Endpoint{}},
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.markDirty() },
		UpdateFunc: func(any, any) { r.markDirty() },
		DeleteFunc: func(any) { r.markDirty() },
	}
	for _, inf := range []cache.SharedIndexInformer{r.svcs, r.slcs, r.pods, r.nodes, r.nss} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, fmt.Errorf("kube registry: %w", err)
		}
	}
	return r, nil
}

// Name is "kubernetes".
func (r *Registry) Name() string { return Name }

// Snapshot returns the current snapshot. It is immutable.
func (r *Registry) Snapshot() *registry.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snap
}

func (r *Registry) markDirty() {
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// Run starts the informers, builds the first snapshot once they have synced
// and rebuilds it on every change until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	r.factory.Start(ctx.Done())
	defer r.factory.Shutdown()
	for typ, ok := range r.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("kube registry: %v informer did not sync", typ)
		}
	}
	r.cfg.Logger.Info("kubernetes registry synced")
	r.markDirty()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.dirty:
		}
		snap := Build(r.input(), r.cfg.Options)
		r.mu.Lock()
		old := r.snap
		r.snap = snap
		r.mu.Unlock()
		if changed, hosts := registry.Diff(old, snap); changed || len(hosts) > 0 {
			if r.cfg.OnChange != nil {
				r.cfg.OnChange()
			}
		}
	}
}

// HasSynced reports whether every informer has its first list.
func (r *Registry) HasSynced() bool {
	return r.svcs.HasSynced() && r.slcs.HasSynced() && r.pods.HasSynced() && r.nodes.HasSynced() && r.nss.HasSynced()
}

func (r *Registry) input() Input {
	var in Input
	in.Services = list[*corev1.Service](r.svcs)
	in.EndpointSlices = list[*discoveryv1.EndpointSlice](r.slcs)
	in.Pods = list[*corev1.Pod](r.pods)
	in.Nodes = list[*corev1.Node](r.nodes)
	in.Namespaces = list[*corev1.Namespace](r.nss)
	return in
}

func list[T any](inf cache.SharedIndexInformer) []T {
	var out []T
	cache.ListAll(inf.GetIndexer(), labels.Everything(), func(o any) {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	})
	return out
}
