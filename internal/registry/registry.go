// Package registry is Mast's service model: services with ports and endpoints,
// gathered from registries (ServiceEntry/WorkloadEntry by default; Kubernetes,
// Consul and Eureka as Watchers) into one aggregate snapshot.
package registry

import (
	"context"
	"sort"
	"time"
	"weak"
)

// Protocol is a service port's application protocol, as Istio names it.
type Protocol string

const (
	HTTP    Protocol = "HTTP"
	HTTP2   Protocol = "HTTP2"
	GRPC    Protocol = "GRPC"
	HTTPS   Protocol = "HTTPS"
	TLS     Protocol = "TLS"
	TCP     Protocol = "TCP"
	Mongo   Protocol = "MONGO"
	Redis   Protocol = "REDIS"
	MySQL   Protocol = "MYSQL"
	Unknown Protocol = "" // sniffed at runtime
)

// IsHTTP reports whether the protocol is carried by the HTTP connection manager.
func (p Protocol) IsHTTP() bool { return p == HTTP || p == HTTP2 || p == GRPC }

// Resolution says how a service's endpoints are found.
type Resolution int

const (
	ResolutionStatic Resolution = iota // endpoints are IP addresses
	ResolutionDNS                      // endpoints are hostnames resolved by the proxy
	ResolutionDNSRoundRobin
	ResolutionNone // passthrough to the original destination
)

// Port is one port of a service.
type Port struct {
	Name       string
	Number     uint32
	Protocol   Protocol
	TargetPort uint32 // 0 when endpoints say or the port number is used
}

// Service is a named, addressable service in the mesh.
type Service struct {
	Hostname        string // FQDN, e.g. reviews.default.svc.cluster.local, or a wildcard for external
	Namespace       string
	Addresses       []string // VIPs; empty when none
	Ports           []Port
	Resolution      Resolution
	MeshExternal    bool
	Labels          map[string]string
	ServiceAccounts []string // SPIFFE IDs or service account names declared for the service
	ExportTo        []string // "*" (default), "." or namespaces
	Registry        string   // which registry it came from, e.g. "serviceentry"
}

// PortByNumber returns the service port with the given number.
func (s *Service) PortByNumber(n uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Number == n {
			return p, true
		}
	}
	return Port{}, false
}

// PortByName returns the service port with the given name.
func (s *Service) PortByName(name string) (Port, bool) {
	for _, p := range s.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// Endpoint is one instance of a service listening on one service port.
type Endpoint struct {
	Hostname       string // the service's hostname
	ServicePort    uint32 // the service port this endpoint serves
	Address        string // IP, or hostname for DNS resolution
	Port           uint32 // the port on Address
	Labels         map[string]string
	Locality       string // region/zone/subzone
	ServiceAccount string // SPIFFE ID when known
	Network        string
	Weight         uint32 // 0 means 1
}

// Snapshot is an immutable view of every service and endpoint.
type Snapshot struct {
	Services  []*Service             // sorted by hostname, then namespace
	Endpoints map[string][]*Endpoint // by service hostname, sorted by address and port
	// Delta, when not nil, bounds how the snapshot differs from the one it
	// was derived from; Diff, Reuse and ChangedHosts then look at its hosts
	// only. Incremental builders set it.
	Delta *Delta
}

// Delta says which hosts of a snapshot may differ from an earlier snapshot:
// every service and endpoint list of a host not in Hosts is the earlier
// snapshot's own (the same pointers). It does not keep the earlier snapshot
// alive.
type Delta struct {
	from  weak.Pointer[Snapshot]
	Hosts map[string]struct{}
}

// NewDelta returns the delta of a snapshot derived from from, in which only
// hosts may differ.
func NewDelta(from *Snapshot, hosts map[string]struct{}) *Delta {
	return &Delta{from: weak.Make(from), Hosts: hosts}
}

// deltaFrom returns the hosts that may differ between old and s, when s's
// delta is relative to old.
func (s *Snapshot) deltaFrom(old *Snapshot) (map[string]struct{}, bool) {
	if s == nil || s.Delta == nil || old == nil || s.Delta.from != weak.Make(old) {
		return nil, false
	}
	return s.Delta.Hosts, true
}

// servicesOf returns the services of host, in namespace order.
func (s *Snapshot) servicesOf(host string) []*Service {
	i, j := s.hostRange(host)
	return s.Services[i:j]
}

// hostRange returns the range of Services whose hostname is host.
func (s *Snapshot) hostRange(host string) (int, int) {
	i := sort.Search(len(s.Services), func(i int) bool { return s.Services[i].Hostname >= host })
	return i, i + hostRun(s.Services[i:], host)
}

// Service returns the service with the given hostname (the first, by namespace order, if several).
func (s *Snapshot) Service(host string) *Service {
	if s == nil {
		return nil
	}
	i := sort.Search(len(s.Services), func(i int) bool { return s.Services[i].Hostname >= host })
	if i < len(s.Services) && s.Services[i].Hostname == host {
		return s.Services[i]
	}
	return nil
}

// EndpointsFor returns the endpoints of a service port.
func (s *Snapshot) EndpointsFor(host string, port uint32) []*Endpoint {
	if s == nil {
		return nil
	}
	var out []*Endpoint
	for _, e := range s.Endpoints[host] {
		if e.ServicePort == port {
			out = append(out, e)
		}
	}
	return out
}

// Registry is one source of services. Implementations keep their own watch
// loops and call the notify function they were built with when they change.
type Registry interface {
	Name() string
	Snapshot() *Snapshot
}

// Watcher is a Registry that follows an outside source (Kubernetes, Consul,
// Eureka). Run watches until ctx ends, calling notify after every change of
// Snapshot, and returns nil when ctx is cancelled; Snapshot never blocks.
// While the source is unreachable a Watcher keeps serving the last services
// it knew and says so in Status.
type Watcher interface {
	Registry
	Run(ctx context.Context, notify func()) error
	Status() Status
}

// Status is a Watcher's state, as mastd's /debug/registryz shows it.
type Status struct {
	Name      string    `json:"name"`
	Source    string    `json:"source,omitempty"` // where it reads from, e.g. the Consul address
	Synced    bool      `json:"synced"`           // a first complete listing arrived
	Stale     bool      `json:"stale"`            // source unreachable: serving the last known services
	LastSync  time.Time `json:"lastSync,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	Services  int       `json:"services"`
	Endpoints int       `json:"endpoints"`
}
