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
	// Source names the cluster in Status (the API server's URL).
	Source string
	Logger *slog.Logger
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

	mu     sync.Mutex
	snap   *registry.Snapshot
	status registry.Status
}

var _ registry.Watcher = (*Registry)(nil)

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
		status:  registry.Status{Name: Name, Source: cfg.Source},
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

// Status says whether the informers have synced and what the snapshot holds.
// client-go's reflectors retry a lost watch on their own and keep their
// caches meanwhile, so the registry serves the last known services.
func (r *Registry) Status() registry.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Run starts the informers, builds the first snapshot once they have synced
// and rebuilds it on every change, calling notify after each change, until
// ctx ends; it returns nil then.
func (r *Registry) Run(ctx context.Context, notify func()) error {
	r.factory.Start(ctx.Done())
	defer r.factory.Shutdown()
	for typ, ok := range r.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("kube registry: %v informer did not sync", typ)
		}
	}
	r.cfg.Logger.Info("kubernetes registry synced")
	r.markDirty()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.dirty:
		}
		snap := Build(r.Input(), r.cfg.Options)
		r.mu.Lock()
		old := r.snap
		r.snap = snap
		r.status.Synced, r.status.LastSync = true, time.Now()
		r.status.Services = len(snap.Services)
		r.status.Endpoints = 0
		for _, eps := range snap.Endpoints {
			r.status.Endpoints += len(eps)
		}
		r.mu.Unlock()
		if changed, hosts := registry.Diff(old, snap); (changed || len(hosts) > 0) && notify != nil {
			notify()
		}
	}
}

// HasSynced reports whether every informer has its first list.
func (r *Registry) HasSynced() bool {
	return r.svcs.HasSynced() && r.slcs.HasSynced() && r.pods.HasSynced() && r.nodes.HasSynced() && r.nss.HasSynced()
}

// Input returns the informers' current objects.
func (r *Registry) Input() Input {
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
