package metrics

import (
	"strconv"
	"strings"
	"sync"

	"github.com/mast-mesh/mast/internal/hostport"
	"github.com/mast-mesh/mast/internal/telemetry"
)

// Unknown is Istio's value for a label that cannot be known.
const Unknown = "unknown"

// Local is the reporting proxy's own workload.
type Local struct {
	Peer telemetry.Peer
	// Principal is the proxy's SPIFFE ID, "" without a certificate.
	Principal string
	// Domain is the cluster DNS suffix for short host names
	// ("svc.cluster.local").
	Domain string
}

// Builder turns records into label sets for one proxy.
type Builder struct {
	local Local
	mu    sync.RWMutex
	hosts map[string]string // short host -> FQDN, bounded
}

// NewBuilder returns a builder reporting as local.
func NewBuilder(local Local) *Builder {
	if local.Domain == "" {
		local.Domain = "svc.cluster.local"
	}
	return &Builder{local: local, hosts: map[string]string{}}
}

// Local returns the builder's own workload.
func (b *Builder) Local() *Local { return &b.local }

var codes = func() (c [600]string) {
	for i := range c {
		c[i] = strconv.Itoa(i)
	}
	return
}()

func or(v string) string {
	if v == "" {
		return Unknown
	}
	return v
}

func setPeer(l *Labels, first Label, p *telemetry.Peer) {
	// first is SourceWorkload or DestinationWorkload; the order of the
	// fields differs between the two sides, so name them.
	if p == nil {
		p = &telemetry.Peer{}
	}
	if first == SourceWorkload {
		l.Std[SourceWorkload] = or(p.Workload)
		l.Std[SourceCanonicalService] = or(p.CanonicalService)
		l.Std[SourceCanonicalRevision] = or(p.CanonicalRevision)
		l.Std[SourceWorkloadNamespace] = or(p.Namespace)
		l.Std[SourceApp] = or(p.App)
		l.Std[SourceVersion] = or(p.Version)
		l.Std[SourceCluster] = or(p.Cluster)
		return
	}
	l.Std[DestinationWorkload] = or(p.Workload)
	l.Std[DestinationCanonicalService] = or(p.CanonicalService)
	l.Std[DestinationCanonicalRevision] = or(p.CanonicalRevision)
	l.Std[DestinationWorkloadNamespace] = or(p.Namespace)
	l.Std[DestinationApp] = or(p.App)
	l.Std[DestinationVersion] = or(p.Version)
	l.Std[DestinationCluster] = or(p.Cluster)
}

// Build fills l with the standard labels of rec. It does not allocate
// once a short host name was seen before.
func (b *Builder) Build(rec *telemetry.Record, l *Labels) {
	*l = Labels{}
	loc := &b.local.Peer
	if rec.Outbound {
		l.Std[Reporter] = "source"
		setPeer(l, SourceWorkload, loc)
		l.Std[SourcePrincipal] = or(b.local.Principal)
		setPeer(l, DestinationWorkload, rec.UpstreamPeer)
		l.Std[DestinationPrincipal] = or(rec.UpstreamPrincipal)
		l.Std[ConnectionSecurityPolicy] = Unknown
		l.Std[DestinationService] = or(b.serviceHost(clusterHost(rec.UpstreamCluster), rec.UpstreamPeer))
	} else {
		l.Std[Reporter] = "destination"
		setPeer(l, SourceWorkload, rec.DownstreamPeer)
		l.Std[SourcePrincipal] = or(rec.DownstreamPrincipal)
		setPeer(l, DestinationWorkload, loc)
		l.Std[DestinationPrincipal] = or(b.local.Principal)
		l.Std[ConnectionSecurityPolicy] = "none"
		if rec.DownstreamMTLS {
			l.Std[ConnectionSecurityPolicy] = "mutual_tls"
		}
		l.Std[DestinationService] = or(b.serviceHost(inboundService(rec), loc))
	}
	svc := l.Std[DestinationService]
	l.Std[DestinationServiceName], l.Std[DestinationServiceNamespace] = Unknown, Unknown
	if svc != Unknown {
		name, rest, _ := strings.Cut(svc, ".")
		l.Std[DestinationServiceName] = name
		if ns, rest, ok := strings.Cut(rest, "."); ok && strings.HasPrefix(rest, "svc.") {
			l.Std[DestinationServiceNamespace] = ns
		} else {
			l.Std[DestinationServiceName] = svc
			l.Std[DestinationServiceNamespace] = or(l.Std[DestinationWorkloadNamespace])
			if l.Std[DestinationServiceNamespace] == Unknown && !rec.Outbound {
				l.Std[DestinationServiceNamespace] = or(loc.Namespace)
			}
		}
	}
	l.Std[RequestProtocol] = protocol(rec)
	if !rec.TCP {
		if c := rec.ResponseCode; c >= 0 && c < len(codes) {
			l.Std[ResponseCode] = codes[c]
		} else {
			l.Std[ResponseCode] = strconv.Itoa(c)
		}
		l.Std[GRPCResponseStatus] = rec.GRPCStatus
	}
	l.Std[ResponseFlags] = rec.Flags.String()
}

// protocol is rec's request_protocol label.
func protocol(rec *telemetry.Record) string {
	switch {
	case rec.TCP:
		return "tcp"
	case rec.GRPCStatus != "" || isGRPC(rec):
		return "grpc"
	}
	return "http"
}

func isGRPC(rec *telemetry.Record) bool {
	ct, _ := rec.RequestHeaders.Get("content-type")
	return strings.HasPrefix(ct, "application/grpc")
}

// clusterHost returns the host of an Istio cluster name
// (outbound|9080|v1|reviews.default.svc.cluster.local), "" for others.
func clusterHost(c string) string {
	if !strings.HasPrefix(c, "outbound|") && !strings.HasPrefix(c, "inbound|") {
		return ""
	}
	i := strings.LastIndexByte(c, '|')
	return c[i+1:]
}

// inboundService is the service an inbound request or connection is for,
// as Istio's stats filter names it: the receiving cluster's service (its
// istio.services metadata; with several, the one the Host header names),
// else the Host header.
func inboundService(rec *telemetry.Record) string {
	host := authorityHost(rec.Authority)
	switch len(rec.ClusterServices) {
	case 0:
		return host
	case 1:
		return rec.ClusterServices[0]
	}
	short, _, _ := strings.Cut(host, ".")
	for _, s := range rec.ClusterServices {
		if s == host {
			return s
		}
	}
	for _, s := range rec.ClusterServices {
		if name, _, _ := strings.Cut(s, "."); name == short {
			return s
		}
	}
	return rec.ClusterServices[0]
}

func authorityHost(a string) string {
	return strings.TrimSuffix(strings.TrimPrefix(hostport.WithoutPort(a), "["), "]")
}

// serviceHost completes a short host name (reviews, reviews.default) as the
// cluster's DNS would, in the namespace of p.
func (b *Builder) serviceHost(h string, p *telemetry.Peer) string {
	if h == "" || strings.Count(h, ".") >= 2 || isIP(h) {
		return h
	}
	b.mu.RLock()
	full, ok := b.hosts[h]
	b.mu.RUnlock()
	if ok {
		return full
	}
	full = h + "." + b.local.Domain
	if !strings.Contains(h, ".") {
		ns := ""
		if p != nil {
			ns = p.Namespace
		}
		if ns == "" {
			return h
		}
		full = h + "." + ns + "." + b.local.Domain
	}
	b.mu.Lock()
	if len(b.hosts) < 1024 {
		b.hosts[strings.Clone(h)] = full
	}
	b.mu.Unlock()
	return full
}

func isIP(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && c != '.' && c != ':' {
			return false
		}
	}
	return true
}

// BuildMessages fills l with the labels of rec's gRPC message metrics:
// the standard ones without those Istio's message metrics do not carry
// (request_protocol, response_code, grpc_response_status, response_flags,
// connection_security_policy), as they are reported while the stream is
// still open.
func (b *Builder) BuildMessages(rec *telemetry.Record, l *Labels) {
	b.Build(rec, l)
	for i := range l.Std {
		if msgOmits(Label(i)) {
			l.Std[i] = ""
		}
	}
}
