// Package kubestore is the configuration store on Kubernetes CRDs: every
// Istio kind Mast understands is read through a dynamic informer, decoded and
// validated by internal/config exactly as a file is, and merged into one
// config.Snapshot. The status of each resource (condition Reconciled, and
// Istio's validationMessages) is written back by internal/kube/status.
package kubestore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/store"
)

// SourcePrefix starts the Source.File of every resource read from the cluster:
// "kube:VirtualService/NAMESPACE/NAME".
const SourcePrefix = "kube:"

// Config configures the store.
type Config struct {
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	// Resync is the informers' resync period (0: none).
	Resync time.Duration
	// OnChange is called after each change that alters the snapshot, with
	// the new snapshot, serially.
	OnChange func(*config.Snapshot)
	Logger   *slog.Logger
}

// Object is one custom resource as last read and what validation said of it.
type Object struct {
	Kind       config.Kind
	Namespace  string
	Name       string
	Generation int64
	// Problems are the decoding and validation findings; with an error the
	// resource is not in the snapshot.
	Problems config.Problems
	// Status is the object's status as read (nil when none).
	Status map[string]any
}

// Store is the CRD configuration store. It is safe for concurrent use.
type Store struct {
	cfg     Config
	factory dynamicinformer.DynamicSharedInformerFactory
	mem     *store.Memory
	kinds   []config.Kind // the kinds whose CRDs are installed

	mu      sync.Mutex
	objects map[string]*Object // by source name
	changed chan struct{}      // closed and replaced on every object change
}

// GVR is the resource Mast watches for kind k: its preferred version.
func GVR(k config.Kind) schema.GroupVersionResource {
	v := strings.TrimPrefix(config.APIVersions(k)[0], k.Group+"/")
	return schema.GroupVersionResource{Group: k.Group, Version: v, Resource: Plural(k)}
}

// Plural is the kind's resource name: "virtualservices", "serviceentries".
func Plural(k config.Kind) string {
	s := strings.ToLower(k.Kind)
	if n := len(s); n > 1 && s[n-1] == 'y' && !strings.ContainsRune("aeiou", rune(s[n-2])) {
		return s[:n-1] + "ies"
	}
	return s + "s"
}

// New returns a store watching every kind of config.Kinds() whose CRD the
// API server serves; kinds without a CRD are logged and left out.
func New(cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Store{
		cfg:     cfg,
		factory: dynamicinformer.NewDynamicSharedInformerFactory(cfg.Dynamic, cfg.Resync),
		mem:     store.NewMemory(),
		objects: map[string]*Object{},
		changed: make(chan struct{}),
	}
	served := map[string]bool{}
	for _, k := range config.Kinds() {
		gvr := GVR(k)
		gv := gvr.GroupVersion().String()
		if _, ok := served[gv+"/"+gvr.Resource]; !ok {
			list, err := cfg.Discovery.ServerResourcesForGroupVersion(gv)
			if err == nil {
				for _, r := range list.APIResources {
					served[gv+"/"+r.Name] = true
				}
			}
		}
		if !served[gv+"/"+gvr.Resource] {
			cfg.Logger.Warn("CRD not installed; kind not watched (install deploy/crds.yaml)", "resource", gvr.String())
			continue
		}
		s.kinds = append(s.kinds, k)
		kind := k
		inf := s.factory.ForResource(gvr).Informer()
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { s.upsert(kind, o) },
			UpdateFunc: func(_, o any) { s.upsert(kind, o) },
			DeleteFunc: func(o any) { s.remove(kind, o) },
		})
		if err != nil {
			return nil, fmt.Errorf("kubestore: %s: %w", gvr, err)
		}
	}
	s.mem.OnChange(func(_, snap *config.Snapshot) {
		if cfg.OnChange != nil {
			cfg.OnChange(snap)
		}
	})
	return s, nil
}

// Kinds returns the kinds watched.
func (s *Store) Kinds() []config.Kind { return s.kinds }

// Run starts the informers and waits until ctx ends. The snapshot holds every
// resource once WaitSynced returns.
func (s *Store) Run(ctx context.Context) error {
	s.factory.Start(ctx.Done())
	<-ctx.Done()
	s.factory.Shutdown()
	return ctx.Err()
}

// WaitSynced blocks until every informer has its first list (or ctx ends).
func (s *Store) WaitSynced(ctx context.Context) bool {
	for _, ok := range s.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return false
		}
	}
	return true
}

// Snapshot returns the current snapshot of valid resources. It is immutable.
func (s *Store) Snapshot() *config.Snapshot { return s.mem.Snapshot() }

// Objects returns every object read, with its problems, and a channel closed
// at the next change.
func (s *Store) Objects() ([]*Object, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Object, 0, len(s.objects))
	for _, o := range s.objects {
		out = append(out, o)
	}
	return out, s.changed
}

// SourceName is the Source.File of the resource kind/ns/name.
func SourceName(k config.Kind, ns, name string) string {
	return SourcePrefix + k.Kind + "/" + ns + "/" + name
}

// Decode reads one custom resource of kind k: the object with its problems
// and status, and the resources it contributes (none when invalid).
func Decode(k config.Kind, u *unstructured.Unstructured) (*Object, []config.Resource) {
	src := SourceName(k, u.GetNamespace(), u.GetName())
	data, err := json.Marshal(u.Object)
	var rs []config.Resource
	var probs config.Problems
	if err != nil {
		probs = config.Problems{{Severity: config.Error, Source: config.Source{File: src}, Message: err.Error()}}
	} else {
		rs, probs = config.Load(src, data)
	}
	status, _, _ := unstructured.NestedMap(u.Object, "status")
	return &Object{Kind: k, Namespace: u.GetNamespace(), Name: u.GetName(), Generation: u.GetGeneration(), Problems: probs, Status: status}, rs
}

func (s *Store) upsert(k config.Kind, o any) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return
	}
	src := SourceName(k, u.GetNamespace(), u.GetName())
	obj, rs := Decode(k, u)
	probs := obj.Problems
	for _, p := range probs {
		level := slog.LevelWarn
		if p.Severity == config.Error {
			level = slog.LevelError
		}
		s.cfg.Logger.Log(context.Background(), level, "config problem", "problem", p.String())
	}
	s.mu.Lock()
	s.objects[src] = obj
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.mem.Set(src, rs)
}

func (s *Store) remove(k config.Kind, o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return
	}
	src := SourceName(k, u.GetNamespace(), u.GetName())
	s.mu.Lock()
	delete(s.objects, src)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.mem.Delete(src)
}
