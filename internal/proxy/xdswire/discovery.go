// Package xdswire is the xDS transport's messages without go-control-plane:
// the discovery requests and responses (state of the world and
// incremental), the core/v3 Node and google.rpc.Status. mast-proxy encodes
// what it sends and decodes what it receives with protowire (each
// resource's value copied out, so a resource kept across updates never
// pins a whole response), so its binary does not link the generated Envoy
// packages (their code and descriptor tables cost resident memory in every
// sidecar); the bytes on the wire are those of the generated types, which
// the tests prove against them.
package xdswire

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
)

// Request is envoy.service.discovery.v3.DiscoveryRequest (state of the
// world) without resource_locators, which mast-proxy neither sends nor reads.
type Request struct {
	VersionInfo string
	// Node is sent in a stream's first request only; decoding skips it.
	Node          *Node
	ResourceNames []string
	TypeURL       string
	ResponseNonce string
	// ErrorDetail makes the request a NACK.
	ErrorDetail *Status
}

// Response is envoy.service.discovery.v3.DiscoveryResponse without canary,
// control_plane and resource_errors (skipped when decoding).
type Response struct {
	VersionInfo string
	Resources   []*anypb.Any
	TypeURL     string
	Nonce       string
}

// DeltaRequest is envoy.service.discovery.v3.DeltaDiscoveryRequest without
// the resource locators.
type DeltaRequest struct {
	Node                   *Node
	TypeURL                string
	Subscribe, Unsubscribe []string
	// InitialResourceVersions is sent (in key order) on a new stream.
	InitialResourceVersions map[string]string
	ResponseNonce           string
	ErrorDetail             *Status
}

// DeltaResponse is envoy.service.discovery.v3.DeltaDiscoveryResponse
// without removed_resource_names, control_plane and resource_errors.
type DeltaResponse struct {
	SystemVersionInfo string
	Resources         []*Resource
	TypeURL           string
	Nonce             string
	RemovedResources  []string
}

// Resource is envoy.service.discovery.v3.Resource without resource_name,
// ttl, cache_control and metadata. Resource is nil when the field is absent
// (the server says the name does not exist).
type Resource struct {
	Name     string
	Aliases  []string
	Version  string
	Resource *anypb.Any
}

// Status is google.rpc.Status without details.
type Status struct {
	Code    int32
	Message string
}

// Field numbers (envoy/service/discovery/v3/discovery.proto,
// google/rpc/status.proto, google/protobuf/any.proto).
const (
	reqVersionInfo   = 1
	reqNode          = 2
	reqResourceNames = 3
	reqTypeURL       = 4
	reqResponseNonce = 5
	reqErrorDetail   = 6

	respVersionInfo = 1
	respResources   = 2
	respTypeURL     = 4
	respNonce       = 5

	deltaReqNode            = 1
	deltaReqTypeURL         = 2
	deltaReqSubscribe       = 3
	deltaReqUnsubscribe     = 4
	deltaReqInitialVersions = 5
	deltaReqResponseNonce   = 6
	deltaReqErrorDetail     = 7

	deltaRespSystemVersionInfo = 1
	deltaRespResources         = 2
	deltaRespTypeURL           = 4
	deltaRespNonce             = 5
	deltaRespRemovedResources  = 6

	resourceVersion  = 1
	resourceResource = 2
	resourceName     = 3
	resourceAliases  = 4

	statusCode    = 1
	statusMessage = 2

	anyTypeURL = 1
	anyValue   = 2
)

// Marshal encodes r as a DiscoveryRequest.
func (r *Request) Marshal() ([]byte, error) {
	var b []byte
	b = appendString(b, reqVersionInfo, r.VersionInfo)
	if r.Node != nil {
		nb, err := r.Node.Marshal()
		if err != nil {
			return nil, err
		}
		b = appendMessage(b, reqNode, nb)
	}
	b = appendStrings(b, reqResourceNames, r.ResourceNames)
	b = appendString(b, reqTypeURL, r.TypeURL)
	b = appendString(b, reqResponseNonce, r.ResponseNonce)
	if r.ErrorDetail != nil {
		b = appendMessage(b, reqErrorDetail, r.ErrorDetail.marshal())
	}
	return b, nil
}

// Marshal encodes r as a DeltaDiscoveryRequest.
func (r *DeltaRequest) Marshal() ([]byte, error) {
	var b []byte
	if r.Node != nil {
		nb, err := r.Node.Marshal()
		if err != nil {
			return nil, err
		}
		b = appendMessage(b, deltaReqNode, nb)
	}
	b = appendString(b, deltaReqTypeURL, r.TypeURL)
	b = appendStrings(b, deltaReqSubscribe, r.Subscribe)
	b = appendStrings(b, deltaReqUnsubscribe, r.Unsubscribe)
	for _, k := range slices.Sorted(maps.Keys(r.InitialResourceVersions)) {
		// A map entry: key and value are written even when empty, as the
		// generated code does.
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendString(e, k)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendString(e, r.InitialResourceVersions[k])
		b = appendMessage(b, deltaReqInitialVersions, e)
	}
	b = appendString(b, deltaReqResponseNonce, r.ResponseNonce)
	if r.ErrorDetail != nil {
		b = appendMessage(b, deltaReqErrorDetail, r.ErrorDetail.marshal())
	}
	return b, nil
}

// Marshal encodes r as a DiscoveryResponse.
func (r *Response) Marshal() []byte {
	var b []byte
	b = appendString(b, respVersionInfo, r.VersionInfo)
	for _, a := range r.Resources {
		var ab []byte
		ab = appendString(ab, anyTypeURL, a.GetTypeUrl())
		if len(a.GetValue()) > 0 {
			ab = protowire.AppendTag(ab, anyValue, protowire.BytesType)
			ab = protowire.AppendBytes(ab, a.GetValue())
		}
		b = appendMessage(b, respResources, ab)
	}
	b = appendString(b, respTypeURL, r.TypeURL)
	b = appendString(b, respNonce, r.Nonce)
	return b
}

func (s *Status) marshal() []byte {
	var b []byte
	if s.Code != 0 {
		b = protowire.AppendTag(b, statusCode, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(s.Code)))
	}
	return appendString(b, statusMessage, s.Message)
}
