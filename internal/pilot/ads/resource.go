package ads

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// xDS v3 type URLs served by the ADS server.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	SecretType   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	// VirtualHostType is VHDS: virtual hosts a route configuration names
	// vhds for, subscribed to by name ("ROUTECONFIG/HOST"), Delta only.
	VirtualHostType = "type.googleapis.com/envoy.config.route.v3.VirtualHost"
	// HealthInfoType is istio-agent's health report: a request whose
	// error_detail, when set, says why the workload's readiness probe fails.
	// It is handed to Config.Health and never answered.
	HealthInfoType = "type.googleapis.com/istio.v1.HealthInformation"
)

// pushOrder is Envoy's make-before-break order: clusters before the endpoints
// they use, listeners before the routes they name, route configurations
// before their on-demand virtual hosts. Other types follow, sorted.
var pushOrder = [...]string{ClusterType, EndpointType, ListenerType, RouteType, VirtualHostType}

func orderRank(typeURL string) int {
	for i, t := range pushOrder {
		if t == typeURL {
			return i
		}
	}
	return len(pushOrder)
}

// isWildcardType reports whether an empty subscription means "all" (LDS, CDS).
func isWildcardType(typeURL string) bool {
	return typeURL == ClusterType || typeURL == ListenerType
}

// shortType is the metric label Istio uses for a type ("cds", "eds", ...).
func shortType(typeURL string) string {
	switch typeURL {
	case ClusterType:
		return "cds"
	case EndpointType:
		return "eds"
	case ListenerType:
		return "lds"
	case RouteType:
		return "rds"
	case SecretType:
		return "sds"
	}
	if i := strings.LastIndexByte(typeURL, '.'); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}

// marshaled is a generated resource in wire form.
type marshaled struct {
	name string
	// any is the resource; its Value is empty when the generator
	// assembled the bytes in pieces (pieces), which only a response's
	// pieced values carry (sotwResponse, deltaResponse).
	any     *anypb.Any
	pieces  [][]byte
	version uint64 // delta: hash of the bytes (0 when not asked for)
}

// size is the length of the resource's value.
func (m *marshaled) size() int {
	if m.pieces != nil {
		return piecesLen(m.pieces)
	}
	return len(m.any.Value)
}

// marshalResources serializes generated resources deterministically, through
// cache when it is not nil, and computes their Delta versions when
// withVersions. It rejects resources without a name, and duplicates, naming
// the type.
func marshalResources(cache *marshalCache, typeURL string, res []model.XDSResource, withVersions bool) ([]marshaled, int, error) {
	out := make([]marshaled, 0, len(res))
	size := 0
	var seen map[string]struct{}
	if len(res) > 1 {
		seen = make(map[string]struct{}, len(res))
	}
	for _, r := range res {
		if r.Name == "" || r.Resource == nil {
			return nil, 0, fmt.Errorf("generate %s: resource with empty name or nil message", shortType(typeURL))
		}
		if seen != nil {
			if _, dup := seen[r.Name]; dup {
				return nil, 0, fmt.Errorf("generate %s: duplicate resource %q", shortType(typeURL), r.Name)
			}
			seen[r.Name] = struct{}{}
		}
		if anyType := r.Resource.ProtoReflect().Descriptor().FullName(); !isTypeURLOf(typeURL, anyType) {
			return nil, 0, fmt.Errorf("generate %s: resource %q is a %s", shortType(typeURL), r.Name, anyType)
		}
		var a *anypb.Any
		var v uint64
		var err error
		var pieces [][]byte
		if r.Encoded != nil {
			// shared by every proxy that gets it: marshaled and hashed once
			if w := r.Encoded.Wire(); len(w) > 1 {
				pieces = w // assembled by the generator, sent as they are
			}
			a, v, err = r.Encoded.Get(func() (*anypb.Any, uint64, error) {
				switch w := r.Encoded.Wire(); {
				case len(w) > 1:
					return &anypb.Any{TypeUrl: typeURL}, hashPieces(w), nil
				case len(w) == 1:
					return &anypb.Any{TypeUrl: typeURL, Value: w[0]}, hashBytes(w[0]), nil
				}
				b, err := cache.marshal(typeURL, r.Resource)
				if err != nil {
					return nil, 0, err
				}
				return &anypb.Any{TypeUrl: typeURL, Value: b}, hashBytes(b), nil
			})
		} else {
			a, v, err = cache.resource(typeURL, r.Resource, withVersions)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("generate %s: marshal %q: %w", shortType(typeURL), r.Name, err)
		}
		m := marshaled{name: r.Name, any: a, pieces: pieces, version: v}
		out = append(out, m)
		size += m.size()
	}
	return out, size, nil
}

// isTypeURLOf reports whether typeURL names the message type full, without
// allocating.
func isTypeURLOf(typeURL string, full protoreflect.FullName) bool {
	const prefix = "type.googleapis.com/"
	return strings.HasPrefix(typeURL, prefix) && typeURL[len(prefix):] == string(full)
}

// formatVersion is the wire form of a Delta resource version.
func formatVersion(v uint64) string { return strconv.FormatUint(v, 16) }

// parseVersion reads a version a client reports (initial_resource_versions);
// a version Mast did not produce reads as 0, which matches no resource.
func parseVersion(s string) uint64 {
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0
	}
	return v
}
