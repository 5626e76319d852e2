package xdsparse

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs of the resources the proxy consumes.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	// VirtualHostType is VHDS: virtual hosts of route configurations that
	// say vhds, asked for on demand ("ROUTECONFIG/HOST"), Delta only.
	VirtualHostType = "type.googleapis.com/envoy.config.route.v3.VirtualHost"
)

// Snapshot is one immutable, consistent view of everything accepted so far.
// Never modify a Snapshot after it was returned.
type Snapshot struct {
	Listeners map[string]*Listener
	Routes    map[string]*RouteTable
	Clusters  map[string]*Cluster
	Endpoints map[string]*EndpointSet
	// Raw holds the accepted resources' encoded bytes by type URL and
	// name, for config dumps and change detection (only the bytes: the
	// Any around them is not kept). Raw[VirtualHostType] are the virtual
	// hosts received on demand (VHDS), by resource name; Routes' VHDS
	// tables hold them parsed.
	Raw map[string]map[string][]byte
	// Versions holds the last accepted version_info by type URL.
	Versions map[string]string
}

// EmptySnapshot returns a snapshot with nothing in it.
func EmptySnapshot() *Snapshot {
	s := &Snapshot{Listeners: map[string]*Listener{}, Routes: map[string]*RouteTable{}, Clusters: map[string]*Cluster{},
		Endpoints: map[string]*EndpointSet{}, Raw: map[string]map[string][]byte{}, Versions: map[string]string{}}
	for _, t := range []string{ListenerType, RouteType, ClusterType, EndpointType, VirtualHostType} {
		s.Raw[t] = map[string][]byte{}
	}
	return s
}

// RouteNames lists the RDS names the listeners reference, sorted.
func (s *Snapshot) RouteNames() []string {
	set := map[string]bool{}
	for _, l := range s.Listeners {
		for _, c := range append(l.Chains[:len(l.Chains):len(l.Chains)], l.Default) {
			if c != nil && c.HTTP != nil && c.HTTP.RDSName != "" {
				set[c.HTTP.RDSName] = true
			}
		}
	}
	return sortedKeys(set)
}

// EndpointNames lists the EDS names the clusters reference, sorted.
func (s *Snapshot) EndpointNames() []string {
	set := map[string]bool{}
	for _, c := range s.Clusters {
		if c.Type == EDS {
			set[c.EDSName] = true
		}
	}
	return sortedKeys(set)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Apply validates one state-of-the-world response of typeURL against prev and
// returns the next snapshot. Valid resources are always taken; an invalid one
// keeps its previous accepted version (if any), and the returned error names
// every rejected resource and why, for the NACK. For listeners and clusters
// the response is the complete set: names it lacks are removed. For routes and
// endpoints it adds or replaces; entries nobody references any more are dropped.
func Apply(prev *Snapshot, typeURL, version string, resources []*anypb.Any) (*Snapshot, error) {
	if typeURL == VirtualHostType {
		return applyVirtualHosts(prev, version, resources)
	}
	next := &Snapshot{Listeners: prev.Listeners, Routes: prev.Routes, Clusters: prev.Clusters, Endpoints: prev.Endpoints,
		Raw: maps.Clone(prev.Raw), Versions: maps.Clone(prev.Versions)}
	var errs []error
	seen := map[string]bool{}
	full := typeURL == ListenerType || typeURL == ClusterType
	raw := map[string][]byte{}
	if !full {
		raw = maps.Clone(prev.Raw[typeURL])
	}
	switch typeURL {
	case ListenerType:
		next.Listeners = map[string]*Listener{}
	case ClusterType:
		next.Clusters = map[string]*Cluster{}
	case RouteType:
		next.Routes = maps.Clone(prev.Routes)
	case EndpointType:
		next.Endpoints = maps.Clone(prev.Endpoints)
	default:
		return prev, fmt.Errorf("type %s: not supported", typeURL)
	}
	for i, a := range resources {
		if a.GetTypeUrl() != typeURL {
			errs = append(errs, fmt.Errorf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), typeURL))
			continue
		}
		name, err := applyOne(next, typeURL, a)
		if name != "" && seen[name] {
			errs = append(errs, fmt.Errorf("resources[%d] %q: duplicate name", i, name))
			continue
		}
		if name != "" {
			seen[name] = true
		}
		if err != nil {
			errs = append(errs, err)
			if name != "" {
				keepPrevious(prev, next, typeURL, name, raw)
			}
			continue
		}
		if old, ok := prev.Raw[typeURL][name]; ok && bytes.Equal(old, a.GetValue()) {
			// Unchanged: keep the previous parsed value (same pointer), so
			// listeners keep their sockets and clusters their pools.
			keepPrevious(prev, next, typeURL, name, raw)
			continue
		}
		raw[name] = a.GetValue()
	}
	next.Raw[typeURL] = raw
	if typeURL == RouteType {
		if err := mergeOnDemand(next, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if typeURL == ListenerType {
		next.Routes = prune(next.Routes, next.RouteNames(), next.Raw, RouteType)
	}
	if typeURL == ClusterType {
		next.Endpoints = prune(next.Endpoints, next.EndpointNames(), next.Raw, EndpointType)
	}
	if len(errs) == 0 {
		next.Versions[typeURL] = version
	}
	return next, errors.Join(errs...)
}

// prune returns m without the entries not in keep (a copy when anything is
// dropped) and drops them from raw[typeURL] (raw itself is already a copy).
func prune[V any](m map[string]V, keep []string, raw map[string]map[string][]byte, typeURL string) map[string]V {
	want := map[string]bool{}
	for _, k := range keep {
		want[k] = true
	}
	changed := false
	for k := range m {
		if !want[k] {
			changed = true
		}
	}
	if !changed {
		return m
	}
	m = maps.Clone(m)
	r := maps.Clone(raw[typeURL])
	for k := range m {
		if !want[k] {
			delete(r, k)
			delete(m, k)
		}
	}
	raw[typeURL] = r
	return m
}

func keepPrevious(prev, next *Snapshot, typeURL, name string, raw map[string][]byte) {
	old, ok := prev.Raw[typeURL][name]
	if !ok {
		return
	}
	raw[name] = old
	switch typeURL {
	case ListenerType:
		next.Listeners[name] = prev.Listeners[name]
	case ClusterType:
		next.Clusters[name] = prev.Clusters[name]
	case RouteType:
		next.Routes[name] = prev.Routes[name]
	case EndpointType:
		next.Endpoints[name] = prev.Endpoints[name]
	}
}

// applyOne decodes and parses one resource into next; it returns the
// resource name whenever it could be decoded.
func applyOne(next *Snapshot, typeURL string, a *anypb.Any) (string, error) {
	switch typeURL {
	case ListenerType:
		name, l, err := DecodeListener(a.GetValue())
		if err != nil {
			return name, err
		}
		next.Listeners[l.Name] = l
		return l.Name, nil
	case ClusterType:
		name, c, err := DecodeCluster(a.GetValue())
		if err != nil {
			return name, err
		}
		next.Clusters[c.Name] = c
		return c.Name, nil
	case RouteType:
		name, t, err := DecodeRouteConfiguration(a.GetValue())
		if err != nil {
			return name, err
		}
		next.Routes[t.Name] = t
		return t.Name, nil
	case EndpointType:
		name, es, err := DecodeEndpoints(a.GetValue())
		if err != nil {
			return name, err
		}
		next.Endpoints[es.Name] = es
		return es.Name, nil
	}
	return "", fmt.Errorf("type %s: not supported", typeURL)
}

// applyVirtualHosts takes the complete set of virtual hosts received on
// demand (the Delta client's merged view) and rebuilds the VHDS tables.
func applyVirtualHosts(prev *Snapshot, version string, resources []*anypb.Any) (*Snapshot, error) {
	next := &Snapshot{Listeners: prev.Listeners, Routes: maps.Clone(prev.Routes), Clusters: prev.Clusters, Endpoints: prev.Endpoints,
		Raw: maps.Clone(prev.Raw), Versions: maps.Clone(prev.Versions)}
	raw := make(map[string][]byte, len(resources))
	var errs []error
	for i, a := range resources {
		if a.GetTypeUrl() != VirtualHostType {
			errs = append(errs, fmt.Errorf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), VirtualHostType))
			continue
		}
		if err := validateWire(descVirtualHost, a.GetValue()); err != nil {
			errs = append(errs, fmt.Errorf("virtual host: decode: %w", err))
			continue
		}
		name := decodeWire(descVirtualHost, a.GetValue()).Str(vhName)
		if strings.LastIndexByte(name, '/') <= 0 {
			errs = append(errs, fmt.Errorf("virtual host %q: name is not ROUTECONFIG/HOST", name))
			continue
		}
		raw[name] = a.GetValue()
	}
	next.Raw[VirtualHostType] = raw
	if err := mergeOnDemand(next, prev); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		next.Versions[VirtualHostType] = version
	}
	return next, errors.Join(errs...)
}

// mergeOnDemand rebuilds every VHDS route table of next from its own
// virtual hosts and next.VirtualHosts (next.Routes is next's own copy).
// With prev, only tables whose on-demand virtual hosts changed are rebuilt.
func mergeOnDemand(next, prev *Snapshot) error {
	byTable := map[string][][]byte{}
	onDemand := next.Raw[VirtualHostType]
	for _, n := range slices.Sorted(maps.Keys(onDemand)) {
		i := strings.LastIndexByte(n, '/')
		byTable[n[:i]] = append(byTable[n[:i]], onDemand[n])
	}
	var errs []error
	for name, t := range next.Routes {
		if !t.VHDS {
			continue
		}
		vhs := byTable[name]
		if prev != nil && !vhostsChanged(name, prev, next) {
			continue
		}
		merged, err := t.WithOnDemand(vhs)
		if err != nil {
			errs = append(errs, err)
		}
		if merged != nil {
			next.Routes[name] = merged
		}
	}
	return errors.Join(errs...)
}

// vhostsChanged reports whether table's on-demand virtual hosts differ
// between prev and next.
func vhostsChanged(table string, prev, next *Snapshot) bool {
	in := func(n string) bool { i := strings.LastIndexByte(n, '/'); return n[:i] == table }
	a, b := prev.Raw[VirtualHostType], next.Raw[VirtualHostType]
	for n, v := range b {
		if in(n) && !bytes.Equal(a[n], v) {
			return true
		}
	}
	for n := range a {
		if _, ok := b[n]; !ok && in(n) {
			return true
		}
	}
	return false
}
