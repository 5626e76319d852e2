package metrics

import (
	"fmt"
	"strings"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// Attr is the value of a custom dimension (a Telemetry API tagOverride):
// one of Istio's attributes or a string literal. mastd checks the CEL
// expression users write and hands the proxy its canonical form, which
// ParseAttr reads without a CEL interpreter. Evaluating an Attr never
// allocates: values are slices of the record's strings or constants.
type Attr struct {
	kind attrKind
	key  string // header name (lower case), label key, or the literal
}

type attrKind uint8

const (
	attrNone attrKind = iota
	attrLiteral
	attrRequestHost
	attrRequestMethod
	attrRequestPath
	attrRequestURLPath
	attrRequestProtocol
	attrRequestScheme
	attrRequestID
	attrRequestUserAgent
	attrRequestReferer
	attrRequestHeader
	attrResponseCode
	attrResponseGRPCStatus
	attrResponseFlags
	attrResponseCodeDetails
	attrResponseHeader
	attrSourceAddress
	attrSourcePort
	attrSourcePrincipal
	attrDestinationAddress
	attrDestinationPort
	attrDestinationPrincipal
	attrConnectionMTLS
	attrClusterName
	attrRouteName
	attrUpstreamHost
	attrPeerBase           // + peerField, upstream_peer
	attrDownstreamPeerBase = attrPeerBase + attrKind(numPeerFields)
)

type peerField uint8

const (
	peerApp peerField = iota
	peerVersion
	peerWorkload
	peerNamespace
	peerCluster
	peerService
	peerRevision
	peerName
	numPeerFields
)

var peerFields = map[string]peerField{"app": peerApp, "version": peerVersion, "workload": peerWorkload,
	"namespace": peerNamespace, "cluster": peerCluster, "service": peerService, "revision": peerRevision, "name": peerName}

// peerLabels are the workload labels a peer's metadata carries, as the
// fields they fill.
var peerLabels = map[string]peerField{"app": peerApp, "version": peerVersion,
	"service.istio.io/canonical-name": peerService, "service.istio.io/canonical-revision": peerRevision}

var plainAttrs = map[string]attrKind{
	"request.host": attrRequestHost, "request.method": attrRequestMethod, "request.path": attrRequestPath,
	"request.url_path": attrRequestURLPath, "request.protocol": attrRequestProtocol, "request.scheme": attrRequestScheme,
	"request.id": attrRequestID, "request.useragent": attrRequestUserAgent, "request.referer": attrRequestReferer,
	"response.code": attrResponseCode, "response.grpc_status": attrResponseGRPCStatus, "response.flags": attrResponseFlags,
	"response.code_details": attrResponseCodeDetails,
	"source.address":        attrSourceAddress, "source.port": attrSourcePort, "source.principal": attrSourcePrincipal,
	"destination.address": attrDestinationAddress, "destination.port": attrDestinationPort,
	"destination.principal": attrDestinationPrincipal, "connection.mtls": attrConnectionMTLS,
	"xds.cluster_name": attrClusterName, "xds.route_name": attrRouteName, "upstream.address": attrUpstreamHost,
}

// AttrNames lists the attribute forms ParseAttr accepts, for messages.
const AttrNames = "a string literal, request.{host,method,path,url_path,protocol,scheme,id,useragent,referer}, " +
	"request.headers['NAME'], response.{code,grpc_status,flags,code_details}, response.headers['NAME'], " +
	"source.{address,port,principal}, destination.{address,port,principal}, connection.mtls, upstream.address, " +
	"xds.{cluster_name,route_name}, upstream_peer.FIELD and downstream_peer.FIELD (FIELD: app, version, workload, " +
	"namespace, cluster, service, revision, name, or labels['app'|'version'|'service.istio.io/canonical-name'|" +
	"'service.istio.io/canonical-revision'])"

// ParseAttr reads the canonical form of a dimension value: a quoted
// literal ('v'), a dotted attribute (request.host), or an indexed one
// (request.headers['x-user'], upstream_peer.labels['app']).
func ParseAttr(s string) (Attr, error) {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		lit := s[1 : len(s)-1]
		if strings.ContainsAny(lit, `'"\`) {
			return Attr{}, fmt.Errorf("%q: literals with quotes or backslashes are not supported", s)
		}
		return Attr{kind: attrLiteral, key: lit}, nil
	}
	if k, ok := plainAttrs[s]; ok {
		return Attr{kind: k}, nil
	}
	base, key, indexed, err := splitIndex(s)
	if err != nil {
		return Attr{}, err
	}
	if indexed {
		switch base {
		case "request.headers":
			return Attr{kind: attrRequestHeader, key: strings.ToLower(key)}, nil
		case "response.headers":
			return Attr{kind: attrResponseHeader, key: strings.ToLower(key)}, nil
		case "upstream_peer.labels", "downstream_peer.labels":
			f, ok := peerLabels[key]
			if !ok {
				return Attr{}, fmt.Errorf("%q: peer label %q is not carried by the metadata exchange (app, version, service.istio.io/canonical-name, service.istio.io/canonical-revision are)", s, key)
			}
			return peerAttr(base, f), nil
		}
		return Attr{}, fmt.Errorf("%q: unknown attribute (supported: %s)", s, AttrNames)
	}
	if side, field, ok := strings.Cut(s, "."); ok && (side == "upstream_peer" || side == "downstream_peer") {
		if f, ok := peerFields[field]; ok {
			return peerAttr(side+".", f), nil
		}
	}
	return Attr{}, fmt.Errorf("%q: unknown attribute (supported: %s)", s, AttrNames)
}

func peerAttr(base string, f peerField) Attr {
	if strings.HasPrefix(base, "upstream_peer") {
		return Attr{kind: attrPeerBase + attrKind(f)}
	}
	return Attr{kind: attrDownstreamPeerBase + attrKind(f)}
}

// splitIndex splits "base['key']" (or ["key"], with an optional trailing
// ".value" as Istio's peer labels are sometimes written).
func splitIndex(s string) (base, key string, indexed bool, err error) {
	s = strings.TrimSuffix(s, ".value")
	i := strings.IndexByte(s, '[')
	if i < 0 {
		return s, "", false, nil
	}
	rest := s[i+1:]
	if len(rest) < 3 || rest[len(rest)-1] != ']' || (rest[0] != '\'' && rest[0] != '"') || rest[len(rest)-2] != rest[0] {
		return "", "", false, fmt.Errorf("%q: an index must be a quoted string", s)
	}
	key = rest[1 : len(rest)-2]
	if key == "" || strings.ContainsAny(key, `'"\[]`) {
		return "", "", false, fmt.Errorf("%q: bad index %q", s, key)
	}
	return s[:i], key, true, nil
}

// Set reports whether a is a dimension value (not the zero Attr).
func (a *Attr) Set() bool { return a.kind != attrNone }

// Eval returns a's value for rec as seen by the proxy local, "" when it
// is not known (the caller reports Istio's "unknown").
func (a *Attr) Eval(rec *telemetry.Record, local *Local) string {
	switch k := a.kind; {
	case k >= attrDownstreamPeerBase:
		return peerValue(rec.DownstreamPeer, peerField(k-attrDownstreamPeerBase))
	case k >= attrPeerBase:
		return peerValue(rec.UpstreamPeer, peerField(k-attrPeerBase))
	}
	switch a.kind {
	case attrLiteral:
		return a.key
	case attrRequestHost:
		return rec.Authority
	case attrRequestMethod:
		return rec.Method
	case attrRequestPath:
		return rec.Path
	case attrRequestURLPath:
		p, _, _ := strings.Cut(rec.Path, "?")
		return p
	case attrRequestProtocol:
		return rec.Protocol
	case attrRequestScheme:
		v, _ := rec.RequestHeaders.Get(":scheme")
		if v == "" {
			v, _ = rec.RequestHeaders.Get("x-forwarded-proto")
		}
		return v
	case attrRequestID:
		v, _ := rec.RequestHeaders.Get("x-request-id")
		return v
	case attrRequestUserAgent:
		v, _ := rec.RequestHeaders.Get("user-agent")
		return v
	case attrRequestReferer:
		v, _ := rec.RequestHeaders.Get("referer")
		return v
	case attrRequestHeader:
		v, _ := rec.RequestHeaders.Get(a.key)
		return v
	case attrResponseCode:
		if c := rec.ResponseCode; c > 0 && c < len(codes) {
			return codes[c]
		}
		return ""
	case attrResponseGRPCStatus:
		return rec.GRPCStatus
	case attrResponseFlags:
		return rec.Flags.String()
	case attrResponseCodeDetails:
		return rec.ResponseDetails
	case attrResponseHeader:
		v, _ := rec.ResponseHeaders.Get(a.key)
		return v
	case attrSourceAddress:
		h, _ := splitHostPort(rec.DownstreamRemote)
		return h
	case attrSourcePort:
		_, p := splitHostPort(rec.DownstreamRemote)
		return p
	case attrSourcePrincipal:
		if rec.Outbound {
			return local.Principal
		}
		return rec.DownstreamPrincipal
	case attrDestinationAddress, attrDestinationPort:
		addr := rec.DownstreamLocal
		if rec.Outbound {
			addr = rec.UpstreamHost
		}
		h, p := splitHostPort(addr)
		if a.kind == attrDestinationPort {
			return p
		}
		return h
	case attrDestinationPrincipal:
		if rec.Outbound {
			return rec.UpstreamPrincipal
		}
		return local.Principal
	case attrConnectionMTLS:
		if rec.DownstreamMTLS {
			return "true"
		}
		return "false"
	case attrClusterName:
		return rec.UpstreamCluster
	case attrRouteName:
		return rec.RouteName
	case attrUpstreamHost:
		return rec.UpstreamHost
	}
	return ""
}

func peerValue(p *telemetry.Peer, f peerField) string {
	if p == nil {
		return ""
	}
	switch f {
	case peerApp:
		return p.App
	case peerVersion:
		return p.Version
	case peerWorkload:
		return p.Workload
	case peerNamespace:
		return p.Namespace
	case peerCluster:
		return p.Cluster
	case peerService:
		return p.CanonicalService
	case peerRevision:
		return p.CanonicalRevision
	case peerName:
		return p.Name
	}
	return ""
}

// splitHostPort splits "ip:port" or "[v6]:port" without allocating.
func splitHostPort(a string) (host, port string) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 || strings.Contains(a[i:], "]") {
		return strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(a[:i], "["), "]"), a[i+1:]
}
