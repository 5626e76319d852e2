// Package config holds Mast's configuration model: Istio's kinds as istio.io/api
// protos wrapped with Kubernetes-style metadata and the place they were read from.
package config

import (
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"
)

// Kind names a configuration kind by API group and kind. Versions of the same
// kind (v1, v1beta1, v1alpha3) decode to the same Kind.
type Kind struct {
	Group string
	Kind  string
}

func (k Kind) String() string { return k.Kind }

// The kinds Mast understands.
var (
	VirtualService        = Kind{"networking.istio.io", "VirtualService"}
	DestinationRule       = Kind{"networking.istio.io", "DestinationRule"}
	Gateway               = Kind{"networking.istio.io", "Gateway"}
	ServiceEntry          = Kind{"networking.istio.io", "ServiceEntry"}
	Sidecar               = Kind{"networking.istio.io", "Sidecar"}
	WorkloadEntry         = Kind{"networking.istio.io", "WorkloadEntry"}
	WorkloadGroup         = Kind{"networking.istio.io", "WorkloadGroup"}
	PeerAuthentication    = Kind{"security.istio.io", "PeerAuthentication"}
	RequestAuthentication = Kind{"security.istio.io", "RequestAuthentication"}
	AuthorizationPolicy   = Kind{"security.istio.io", "AuthorizationPolicy"}
	Telemetry             = Kind{"telemetry.istio.io", "Telemetry"}
	ProxyConfig           = Kind{"networking.istio.io", "ProxyConfig"}
	EnvoyFilter           = Kind{"networking.istio.io", "EnvoyFilter"}
)

// Source is where a resource was read from.
type Source struct {
	File string // path as given to the decoder, or a store-specific origin such as "kube"
	Line int    // 1-based line of the document's first line; 0 when unknown
}

func (s Source) String() string {
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.File
}

// Key identifies a resource in a store: kind, namespace and name.
type Key struct {
	Kind      Kind
	Namespace string
	Name      string
}

func (k Key) String() string { return k.Kind.Kind + "/" + k.Namespace + "/" + k.Name }

// Meta is the Kubernetes-style metadata of a resource.
type Meta struct {
	Kind        Kind
	APIVersion  string // as written, e.g. "networking.istio.io/v1alpha3"
	Name        string
	Namespace   string // "default" when the document does not say
	Labels      map[string]string
	Annotations map[string]string
	Source      Source
	// Positions holds the line of each field when the resource was decoded
	// from a file (nil otherwise); problems use it to point at the field.
	Positions *Positions
}

// Resource is one configuration object: metadata plus its istio.io/api spec
// (for example *v1alpha3.VirtualService). Resources are immutable once stored.
type Resource struct {
	Meta
	Spec proto.Message
}

// Key returns the resource's identity.
func (r Resource) Key() Key { return Key{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name} }

// Snapshot is an immutable set of resources, indexed by kind and key.
// Lists are sorted by namespace then name, so output built from them is stable;
// a key is found by binary search in its kind's list, so that Update copies
// no index of every resource. Each kind is held as one list per namespace
// (kindList), so that Update copies the lists of the namespaces it touches,
// not every resource of the kind.
type Snapshot struct {
	byKind map[Kind]*kindList
	n      int
}

// NewSnapshot indexes rs. A later resource with the same key replaces an earlier one.
func NewSnapshot(rs []Resource) *Snapshot {
	byKey := make(map[Key]Resource, len(rs))
	for _, r := range rs {
		byKey[r.Key()] = r
	}
	lists := map[Kind][]Resource{}
	for k, r := range byKey {
		lists[k.Kind] = append(lists[k.Kind], r)
	}
	s := &Snapshot{byKind: make(map[Kind]*kindList, len(lists)), n: len(byKey)}
	for k, list := range lists {
		slices.SortFunc(list, compareNamespaceName)
		s.byKind[k] = newKindList(list)
	}
	return s
}

// List returns the resources of kind k, sorted by namespace and name. Callers must not modify it.
func (s *Snapshot) List(k Kind) []Resource {
	if s == nil {
		return nil
	}
	return s.byKind[k].list()
}

// ByNamespace returns the resources of kind k grouped by namespace, sorted
// by namespace, each group sorted by name: List without concatenating. In a
// snapshot made by Update, a namespace Update did not touch has the same
// slice as before (SameResources). Callers must not modify it.
func (s *Snapshot) ByNamespace(k Kind) []NamespaceResources {
	if s == nil || s.byKind[k] == nil {
		return nil
	}
	return s.byKind[k].segs
}

// Get returns the resource with key k.
func (s *Snapshot) Get(k Key) (Resource, bool) {
	if s == nil || s.byKind[k.Kind] == nil {
		return Resource{}, false
	}
	list := InNamespace(s.byKind[k.Kind].segs, k.Namespace)
	if i, found := slices.BinarySearchFunc(list, k, compareToKey); found {
		return list[i], true
	}
	return Resource{}, false
}

// Len is the number of resources in the snapshot.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Kinds returns the kinds that have resources, sorted.
func (s *Snapshot) Kinds() []Kind {
	if s == nil {
		return nil
	}
	kinds := make([]Kind, 0, len(s.byKind))
	for k, l := range s.byKind {
		if l.n > 0 {
			kinds = append(kinds, k)
		}
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i].Kind < kinds[j].Kind })
	return kinds
}

// All returns every resource, sorted by kind, namespace and name.
func (s *Snapshot) All() []Resource {
	if s == nil {
		return nil
	}
	out := make([]Resource, 0, s.n)
	for _, k := range s.Kinds() {
		out = append(out, s.byKind[k].list()...)
	}
	return out
}
