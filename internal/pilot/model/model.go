// Package model holds Pilot's inputs for generating proxy configuration: the
// proxy as identified by its xDS node, and the push context, an immutable
// snapshot of configuration and services that generators read and never change.
package model

import (
	meshconfig "istio.io/api/mesh/v1alpha1"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// NodeType is the role of a proxy.
type NodeType string

const (
	SidecarProxy NodeType = "sidecar"
	Router       NodeType = "router" // ingress or egress gateway
)

// Proxy is a connected xDS client as described by its node ID and metadata.
// Node IDs follow Istio: TYPE~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local.
type Proxy struct {
	ID             string // the whole node ID
	Type           NodeType
	IPAddresses    []string
	Name           string // pod or workload name
	Namespace      string
	DNSDomain      string
	Labels         map[string]string
	ServiceAccount string // SPIFFE ID or bare service account name from metadata
	Generator      string // "grpc" for proxyless gRPC clients, "" for sidecars and gateways
	Metadata       map[string]string
	// Locality is "region/zone/subzone" from the node's locality or the
	// labels topology.kubernetes.io/region, topology.kubernetes.io/zone and
	// topology.istio.io/subzone; "" when unknown.
	Locality string
}

// InterceptionNone reports whether the proxy runs without traffic capture
// (node metadata INTERCEPTION_MODE "NONE"): it then gets listeners bound to
// its own IP instead of the 15001/15006 capture listeners.
func (p *Proxy) InterceptionNone() bool { return p.Metadata["INTERCEPTION_MODE"] == "NONE" }

// IP returns the proxy's first IP address, or "" when it has none.
func (p *Proxy) IP() string {
	if len(p.IPAddresses) == 0 {
		return ""
	}
	return p.IPAddresses[0]
}

// IsGRPC reports whether the proxy is a proxyless gRPC client.
func (p *Proxy) IsGRPC() bool { return p.Generator == "grpc" }

// MeshConfig is the mesh-wide configuration passed down from main.
type MeshConfig struct {
	TrustDomain   string // default "cluster.local"
	RootNamespace string // default "istio-system": mesh-wide policies live here
	DomainSuffix  string // default "cluster.local"
	// PathNormalization is Istio's pathNormalization.normalization
	// (DEFAULT is BASE); it sets the HCM's path normalization fields.
	PathNormalization meshconfig.MeshConfig_ProxyPathNormalization_NormalizationType
	// ExtensionProviders are the external authorizers (and other
	// providers) policies name; read-only.
	ExtensionProviders []*meshconfig.MeshConfig_ExtensionProvider
	// AccessLogFile, AccessLogEncoding ("TEXT" or "JSON") and
	// AccessLogFormat are MeshConfig's: access logs are off while the
	// file is empty, as in Istio.
	AccessLogFile, AccessLogEncoding, AccessLogFormat string
	// DefaultTracingProviders is defaultProviders.tracing: the providers
	// that trace every proxy no Telemetry resource says otherwise for.
	DefaultTracingProviders []string
	// DefaultAccessLogProviders is defaultProviders.accessLogging.
	DefaultAccessLogProviders []string
	// TracingSampling is defaultConfig.tracing.sampling (percent);
	// TracingSamplingSet says it was given (else Istio's 1 %).
	TracingSampling    float64
	TracingSamplingSet bool
	// RateLimitService is the host:port of mastd's rate-limit service that
	// GLOBAL RateLimit filters dial; "" when it does not run (GLOBAL limits
	// are then not generated; mastd warns).
	RateLimitService string
	// Istio 1.4's Mixer fields: DisablePolicyChecks turns the proxies'
	// Mixer checks off; PolicyCheckFailOpen lets requests through when the
	// Mixer cannot be reached (closed by default); MixerCheckServer and
	// MixerReportServer are the host:port proxies send Check and Report to
	// (mastd's own Mixer when empty).
	DisablePolicyChecks, PolicyCheckFailOpen bool
	MixerCheckServer, MixerReportServer      string
	// MixerQuotaPrefetch lets the proxies' Mixer filters prefetch quota
	// as Istio 1.4's did (disable_quota_cache false): fewer Checks, but a
	// quota is no longer exact across proxies. Off by default (mastd
	// --mixer-quota-prefetch).
	MixerQuotaPrefetch bool
	// MeshNetworks is Istio's meshNetworks (the istio ConfigMap's
	// meshNetworks key, or the mesh config file's): the networks' gateways
	// and fromCidr endpoint ranges. nil for a single-network mesh.
	MeshNetworks *meshconfig.MeshNetworks
}

// RevocationList is the PEM X.509 CRLs (one per signing certificate) of
// the mesh CA.
type RevocationList struct {
	PEM []byte
}

// ExtensionProvider is one of MeshConfig's extensionProviders.
type ExtensionProvider = meshconfig.MeshConfig_ExtensionProvider

// DefaultMeshConfig returns Istio's defaults.
func DefaultMeshConfig() MeshConfig {
	return MeshConfig{TrustDomain: "cluster.local", RootNamespace: "istio-system", DomainSuffix: "cluster.local"}
}

// PushContext is an immutable snapshot of everything generators read.
// Build it with NewPushContext; never modify it afterwards.
type PushContext struct {
	Version  string // changes on every push; used as the xDS version
	Mesh     MeshConfig
	Config   *config.Snapshot
	Registry *registry.Snapshot
	// JWKS are the key sets mastd fetched for RequestAuthentication
	// jwksUri (and issuer discovery); set before the context is shared.
	JWKS JWKSSnapshot
	// CRL is the mesh CA's revocation list, nil while no certificate is
	// revoked; generators put it in every Istio mTLS validation context.
	// Set before the context is shared; the same pointer means the same list.
	CRL *RevocationList

	idxOnce sync.Once
	idx     *index // built once, in NewPushContext (or on first use for a literal PushContext)
}

// ix returns the push context's indexes, building them if the context was
// not made by NewPushContext.
func (pc *PushContext) ix() *index {
	pc.idxOnce.Do(func() {
		if pc.idx == nil {
			pc.idx = buildIndex(pc.Mesh, pc.Config, pc.Registry)
		}
	})
	return pc.idx
}

// NewPushContext builds a push context and its indexes.
func NewPushContext(version string, mesh MeshConfig, cfg *config.Snapshot, reg *registry.Snapshot) *PushContext {
	mesh = withMeshDefaults(mesh)
	pc := &PushContext{Version: version, Mesh: mesh, Config: cfg, Registry: reg}
	pc.ix()
	return pc
}

func withMeshDefaults(mesh MeshConfig) MeshConfig {
	if mesh.DomainSuffix == "" {
		mesh.DomainSuffix = "cluster.local"
	}
	if mesh.RootNamespace == "" {
		mesh.RootNamespace = "istio-system"
	}
	if mesh.TrustDomain == "" {
		mesh.TrustDomain = "cluster.local"
	}
	return mesh
}

// PushRequest says what changed and therefore what must be pushed.
type PushRequest struct {
	// Full is true when anything but endpoints changed: the types in Types
	// (every type when Types is nil) are regenerated for every proxy.
	Full bool
	// Types, on a full request, limits it to these xDS type URLs; nil means
	// every type. A VirtualService change, say, touches listeners and routes
	// but no cluster or endpoint.
	Types map[string]struct{}
	// EDSHosts lists service hostnames whose endpoints changed: EDS for these
	// services is pushed (on its own when Full is false).
	EDSHosts map[string]struct{}
	// Hosts, when not nil on a full request, says the change altered only
	// the HTTP routes of these hosts (FQDNs or wildcards, as VirtualService
	// hosts resolve): a proxy's resources of Types that do not depend on
	// them may be skipped (generate.RouteScope decides which). nil means
	// unknown: everything in Types.
	Hosts map[string]struct{}
	// Addresses lists workload addresses whose workloads (ports, services)
	// changed: a proxy with one of these IPs gets every type, because its
	// inbound listeners and clusters follow the workloads at its own address.
	Addresses map[string]struct{}
	// Reason is for logs and debug output.
	Reason string
	// Start is when the first change this request covers was seen (zero
	// when unknown); pilot_proxy_convergence_time is measured from it.
	Start time.Time
}

// FullType reports whether req regenerates type typeURL in whole for p:
// a full request covering the type, or a change at one of p's addresses.
func (r *PushRequest) FullType(p *Proxy, typeURL string) bool {
	if r.Full {
		if r.Types == nil {
			return true
		}
		if _, ok := r.Types[typeURL]; ok {
			return true
		}
	}
	if len(r.Addresses) > 0 && p != nil {
		for _, ip := range p.IPAddresses {
			if _, ok := r.Addresses[ip]; ok {
				return true
			}
		}
	}
	return false
}

// Merge combines two requests into one covering both. Either may be nil.
func (r *PushRequest) Merge(o *PushRequest) *PushRequest {
	if r == nil {
		return o
	}
	if o == nil {
		return r
	}
	m := &PushRequest{Full: r.Full || o.Full, Reason: r.Reason, Start: r.Start}
	if m.Start.IsZero() || !o.Start.IsZero() && o.Start.Before(m.Start) {
		m.Start = o.Start
	}
	if o.Reason != "" && o.Reason != r.Reason {
		if m.Reason != "" {
			m.Reason += ","
		}
		m.Reason += o.Reason
	}
	// Types: nil on a full request means all, so the union is nil if either
	// full side says all; a side that is not full adds no type.
	if m.Full && !(r.Full && r.Types == nil) && !(o.Full && o.Types == nil) {
		m.Types = map[string]struct{}{}
		for _, x := range []*PushRequest{r, o} {
			if x.Full {
				unionInto(m.Types, x.Types)
			}
		}
	}
	if !m.Full || m.Types != nil {
		m.EDSHosts = unionSets(r.EDSHosts, o.EDSHosts)
	}
	// Hosts narrow a full request only while every full side narrows it.
	if m.Types != nil && (!r.Full || r.Hosts != nil) && (!o.Full || o.Hosts != nil) {
		m.Hosts = unionSets(r.Hosts, o.Hosts)
		if m.Hosts == nil {
			m.Hosts = map[string]struct{}{}
		}
	}
	m.Addresses = unionSets(r.Addresses, o.Addresses)
	return m
}

func unionSets(a, b map[string]struct{}) map[string]struct{} {
	if len(a)+len(b) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(a)+len(b))
	unionInto(m, a)
	unionInto(m, b)
	return m
}

func unionInto(dst, src map[string]struct{}) {
	for k := range src {
		dst[k] = struct{}{}
	}
}

// XDSResource is one generated resource with its xDS name.
type XDSResource struct {
	Name     string
	Resource proto.Message
	// Encoded, when not nil, holds Resource's wire form once computed: a
	// generator cache hands the same Resource and Encoded to every proxy
	// that gets the resource, so it is marshaled (and hashed) once.
	Encoded *Encoded
}

// Encoded is the wire form of one immutable generated resource, computed on
// first use and shared by every proxy it is sent to.
type Encoded struct {
	once    sync.Once
	any     *anypb.Any
	version uint64
	err     error
	wire    [][]byte // assembled by the generator, in pieces; nil: marshal the resource
}

// EncodedWire returns the Encoded of a resource whose wire form the
// generator assembled from parts it holds in wire form: the concatenation
// of pieces is exactly the resource's deterministic encoding, so the server
// sends the pieces as they are (without joining them into one copy)
// instead of marshaling the resource. The pieces are never written to
// again: gRPC may still be writing them to a slow connection pushes later.
func EncodedWire(pieces ...[]byte) *Encoded { return &Encoded{wire: pieces} }

// Wire returns the pieces of the wire form the generator assembled
// (EncodedWire), or nil when the resource is to be marshaled (or e is
// nil). The caller must not modify them.
func (e *Encoded) Wire() [][]byte {
	if e == nil {
		return nil
	}
	return e.wire
}

// Get returns the wire form, calling encode the first time.
func (e *Encoded) Get(encode func() (*anypb.Any, uint64, error)) (*anypb.Any, uint64, error) {
	e.once.Do(func() { e.any, e.version, e.err = encode() })
	return e.any, e.version, e.err
}

// GenerateFunc generates the resources of one xDS type for a proxy. names are
// the resource names the proxy subscribed to; empty means all (wildcard).
type GenerateFunc func(pc *PushContext, p *Proxy, typeURL string, names []string) ([]XDSResource, error)

// OnDemandRoutes reports whether the proxy asked for its sidecar route
// configurations' virtual hosts on demand (node metadata MAST_VHDS "true"):
// it then gets each "PORT" route configuration without virtual hosts, with
// VHDS over ADS, and subscribes to "PORT/HOST" virtual hosts as it meets
// hosts. Only the incremental (Delta) protocol can carry them.
func (p *Proxy) OnDemandRoutes() bool { return p.Metadata[OnDemandRoutesKey] == "true" }

// OnDemandRoutesKey is the node metadata key of Proxy.OnDemandRoutes.
const OnDemandRoutesKey = "MAST_VHDS"

// NextPushContext builds the push context that follows prev (nil: as
// NewPushContext): its indexes share every part whose inputs are prev's own
// (the same resource lists of the config snapshot, the same registry
// snapshot or services), the registry's indexes are patched for the hosts
// whose services or endpoints changed, and prev's sidecar scopes are carried
// over while the services and Sidecars are unchanged. The result equals
// NewPushContext's (TestNextPushContextMatchesNew). prev is not retained.
func NextPushContext(prev *PushContext, version string, mesh MeshConfig, cfg *config.Snapshot, reg *registry.Snapshot) *PushContext {
	if prev == nil {
		return NewPushContext(version, mesh, cfg, reg)
	}
	mesh = withMeshDefaults(mesh)
	pc := &PushContext{Version: version, Mesh: mesh, Config: cfg, Registry: reg}
	pc.idx = nextIndex(prev.ix(), mesh, cfg, reg)
	pc.ix()
	return pc
}
