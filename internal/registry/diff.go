package registry

import (
	"maps"
	"reflect"
	"slices"
)

// Diff compares two snapshots for a push: servicesChanged reports whether any
// service was added, removed or altered; changedEndpointHosts holds every
// hostname whose endpoints differ (added, removed or altered), or is nil when
// none does. A nil snapshot is empty. When services are unchanged and only
// endpoints changed, an EDS push for changedEndpointHosts suffices.
//
// Diff does not allocate unless endpoints changed; pointers, slices and label
// maps that new shares with old are recognised without comparing their
// contents.
func Diff(old, new *Snapshot) (servicesChanged bool, changedEndpointHosts map[string]struct{}) {
	if old == new {
		return false, nil
	}
	if old == nil {
		old = &Snapshot{}
	}
	if new == nil {
		new = &Snapshot{}
	}
	if hosts, ok := new.deltaFrom(old); ok {
		for host := range hosts {
			if !slices.EqualFunc(old.servicesOf(host), new.servicesOf(host), serviceEqual) {
				servicesChanged = true
			}
			if !endpointsEqual(old.Endpoints[host], new.Endpoints[host]) {
				changedEndpointHosts = addHost(changedEndpointHosts, host)
			}
		}
		return servicesChanged, changedEndpointHosts
	}
	servicesChanged = !slices.EqualFunc(old.Services, new.Services, serviceEqual)
	for host, eps := range new.Endpoints {
		if !endpointsEqual(old.Endpoints[host], eps) {
			changedEndpointHosts = addHost(changedEndpointHosts, host)
		}
	}
	for host, eps := range old.Endpoints {
		if _, ok := new.Endpoints[host]; !ok && len(eps) > 0 {
			changedEndpointHosts = addHost(changedEndpointHosts, host)
		}
	}
	return servicesChanged, changedEndpointHosts
}

func addHost(m map[string]struct{}, host string) map[string]struct{} {
	if m == nil {
		m = map[string]struct{}{}
	}
	m[host] = struct{}{}
	return m
}

// ServiceEqual reports whether two services are equal in every field.
func ServiceEqual(a, b *Service) bool { return serviceEqual(a, b) }

// EndpointsEqual reports whether two endpoint lists are equal, endpoint by
// endpoint and in order.
func EndpointsEqual(a, b []*Endpoint) bool { return endpointsEqual(a, b) }

func serviceEqual(a, b *Service) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.Hostname == b.Hostname && a.Namespace == b.Namespace && a.Resolution == b.Resolution &&
		a.MeshExternal == b.MeshExternal && a.Registry == b.Registry &&
		slices.Equal(a.Addresses, b.Addresses) && slices.Equal(a.Ports, b.Ports) &&
		slices.Equal(a.ServiceAccounts, b.ServiceAccounts) && slices.Equal(a.ExportTo, b.ExportTo) &&
		labelsEqual(a.Labels, b.Labels)
}

func endpointsEqual(a, b []*Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	// The label maps last found equal: endpoints of one workload (one per
	// service port) share theirs, so most comparisons are two pointer checks.
	var lastA, lastB map[string]string
	for i := range a {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x == nil || y == nil {
			return false
		}
		if x.Hostname != y.Hostname || x.ServicePort != y.ServicePort || x.Address != y.Address || x.Port != y.Port ||
			x.Locality != y.Locality || x.ServiceAccount != y.ServiceAccount || x.Network != y.Network ||
			x.Weight != y.Weight {
			return false
		}
		if sameMap(x.Labels, lastA) && sameMap(y.Labels, lastB) {
			continue
		}
		if !labelsEqual(x.Labels, y.Labels) {
			return false
		}
		lastA, lastB = x.Labels, y.Labels
	}
	return true
}

// sameMap reports whether a and b are the same map (not merely equal ones).
func sameMap(a, b map[string]string) bool {
	return a != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// labelsEqual compares label maps, recognising a shared map without a lookup.
func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || sameMap(a, b) {
		return true
	}
	return maps.Equal(a, b)
}

// Reuse returns new with every service and every host's endpoint list that
// equals old's replaced by old's own, so that what did not change keeps its
// identity from one snapshot to the next (the xDS cache keys on it, and Diff
// recognises shared pointers without comparing). new itself is not
// modified: a snapshot with replacements is a new one.
func Reuse(old, new *Snapshot) *Snapshot {
	if old == nil || new == nil || old == new {
		return new
	}
	out := *new
	cloned := false
	if hosts, ok := new.deltaFrom(old); ok {
		// Only these hosts can hold anything that is not old's own.
		for host := range hosts {
			lo, hi := new.hostRange(host)
			for i := lo; i < hi; i++ {
				s := new.Services[i]
				if o := old.Service(s.Hostname); o != nil && o != s && serviceEqual(o, s) {
					if !cloned {
						out.Services, cloned = slices.Clone(new.Services), true
					}
					out.Services[i] = o
				}
			}
		}
		epsCloned := false
		for host := range hosts {
			eps := new.Endpoints[host]
			if o, ok := old.Endpoints[host]; ok && len(o) > 0 && (len(eps) == 0 || &o[0] != &eps[0]) && endpointsEqual(o, eps) {
				if !epsCloned {
					out.Endpoints, epsCloned = maps.Clone(new.Endpoints), true
				}
				out.Endpoints[host] = o
			}
		}
		if !cloned && !epsCloned {
			return new
		}
		return &out
	}
	for i, s := range new.Services {
		if o := old.Service(s.Hostname); o != nil && o != s && serviceEqual(o, s) {
			if !cloned {
				out.Services, cloned = slices.Clone(new.Services), true
			}
			out.Services[i] = o
		}
	}
	cloned = false
	for host, eps := range new.Endpoints {
		if o, ok := old.Endpoints[host]; ok && len(o) > 0 && (len(eps) == 0 || &o[0] != &eps[0]) && endpointsEqual(o, eps) {
			if !cloned {
				out.Endpoints, cloned = maps.Clone(new.Endpoints), true
			}
			out.Endpoints[host] = o
		}
	}
	return &out
}

// ChangedHosts returns the hostnames whose services (in any namespace) in
// new are not old's own — added, removed, or another pointer — and those
// whose endpoint list is not old's own. Identity is what it compares:
// registry.Reuse and the incremental builders keep what did not change, so
// a host is in a set when its value differs, or is equal but was rebuilt.
// A nil snapshot is empty.
func ChangedHosts(old, new *Snapshot) (services, endpoints map[string]struct{}) {
	if old == new {
		return nil, nil
	}
	if old == nil {
		old = &Snapshot{}
	}
	if new == nil {
		new = &Snapshot{}
	}
	if hosts, ok := new.deltaFrom(old); ok {
		for host := range hosts {
			if !slices.Equal(old.servicesOf(host), new.servicesOf(host)) {
				services = addHost(services, host)
			}
			if !sameList(old.Endpoints[host], new.Endpoints[host]) {
				endpoints = addHost(endpoints, host)
			}
		}
		return services, endpoints
	}
	a, b := old.Services, new.Services
	for len(a) > 0 || len(b) > 0 {
		var host string
		switch {
		case len(a) == 0:
			host = b[0].Hostname
		case len(b) == 0:
			host = a[0].Hostname
		default:
			host = min(a[0].Hostname, b[0].Hostname)
		}
		i, j := hostRun(a, host), hostRun(b, host)
		if i != j || !slices.Equal(a[:i], b[:j]) {
			services = addHost(services, host)
		}
		a, b = a[i:], b[j:]
	}
	for host, eps := range new.Endpoints {
		if o := old.Endpoints[host]; !sameList(o, eps) {
			endpoints = addHost(endpoints, host)
		}
	}
	for host, eps := range old.Endpoints {
		if _, ok := new.Endpoints[host]; !ok && len(eps) > 0 {
			endpoints = addHost(endpoints, host)
		}
	}
	return services, endpoints
}

// hostRun is the number of leading services of s with hostname host.
func hostRun(s []*Service, host string) int {
	n := 0
	for n < len(s) && s[n].Hostname == host {
		n++
	}
	return n
}

// sameList reports whether a and b are the same endpoint list (or both empty).
func sameList(a, b []*Endpoint) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
