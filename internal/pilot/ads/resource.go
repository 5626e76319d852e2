package ads

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
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
)

// pushOrder is Envoy's make-before-break order: clusters before the endpoints
// they use, listeners before the routes they name. Other types follow, sorted.
var pushOrder = [...]string{ClusterType, EndpointType, ListenerType, RouteType}

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
	name    string
	any     *anypb.Any
	version string // hash of the bytes: the delta per-resource version
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// marshalResources serializes generated resources deterministically and
// computes their versions. It rejects resources without a name, and
// duplicates, naming the type.
func marshalResources(typeURL string, res []model.XDSResource) ([]marshaled, int, error) {
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
		anyType := "type.googleapis.com/" + string(r.Resource.ProtoReflect().Descriptor().FullName())
		if anyType != typeURL {
			return nil, 0, fmt.Errorf("generate %s: resource %q is a %s", shortType(typeURL), r.Name, anyType)
		}
		b, err := deterministic.Marshal(r.Resource)
		if err != nil {
			return nil, 0, fmt.Errorf("generate %s: marshal %q: %w", shortType(typeURL), r.Name, err)
		}
		h := fnv.New64a()
		h.Write(b)
		out = append(out, marshaled{
			name:    r.Name,
			any:     &anypb.Any{TypeUrl: typeURL, Value: b},
			version: strconv.FormatUint(h.Sum64(), 16),
		})
		size += len(b)
	}
	return out, size, nil
}
