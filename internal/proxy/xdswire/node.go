package xdswire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Node is envoy.config.core.v3.Node, the fields mast-proxy sets: it
// identifies the proxy to the control plane in a stream's first request.
type Node struct {
	ID, Cluster string
	// Metadata is Istio's node metadata (NAMESPACE, LABELS, ...).
	Metadata *structpb.Struct
	Locality Locality
	// UserAgentName and UserAgentVersion name the xDS client.
	UserAgentName, UserAgentVersion string
	ClientFeatures                  []string
}

// Locality is envoy.config.core.v3.Locality.
type Locality struct {
	Region, Zone, SubZone string
}

// MetaString returns the string metadata value of key ("" when absent or
// not a string).
func (n *Node) MetaString(key string) string {
	if n == nil || n.Metadata == nil {
		return ""
	}
	return n.Metadata.GetFields()[key].GetStringValue()
}

// SetMeta sets a string metadata value.
func (n *Node) SetMeta(key, value string) {
	if n.Metadata == nil {
		n.Metadata = &structpb.Struct{}
	}
	if n.Metadata.Fields == nil {
		n.Metadata.Fields = map[string]*structpb.Value{}
	}
	n.Metadata.Fields[key] = structpb.NewStringValue(value)
}

// Node's field numbers (envoy/config/core/v3/base.proto).
const (
	nodeID               = 1
	nodeCluster          = 2
	nodeMetadata         = 3
	nodeLocality         = 4
	nodeUserAgentName    = 6
	nodeUserAgentVersion = 7
	nodeClientFeatures   = 10
)

// Marshal encodes n as envoy.config.core.v3.Node (metadata with sorted
// keys, so the bytes are stable).
func (n *Node) Marshal() ([]byte, error) {
	var b []byte
	b = appendString(b, nodeID, n.ID)
	b = appendString(b, nodeCluster, n.Cluster)
	if n.Metadata != nil {
		md, err := proto.MarshalOptions{Deterministic: true}.Marshal(n.Metadata)
		if err != nil {
			return nil, fmt.Errorf("node metadata: %w", err)
		}
		b = protowire.AppendTag(b, nodeMetadata, protowire.BytesType)
		b = protowire.AppendBytes(b, md)
	}
	if l := n.Locality; l != (Locality{}) {
		var lb []byte
		lb = appendString(lb, 1, l.Region)
		lb = appendString(lb, 2, l.Zone)
		lb = appendString(lb, 3, l.SubZone)
		b = protowire.AppendTag(b, nodeLocality, protowire.BytesType)
		b = protowire.AppendBytes(b, lb)
	}
	b = appendString(b, nodeUserAgentName, n.UserAgentName)
	b = appendStrings(b, nodeClientFeatures, n.ClientFeatures)
	if n.UserAgentVersion != "" {
		// A oneof member, written after the other fields as the generated
		// code does; mast-proxy sets it only with a value.
		b = protowire.AppendTag(b, nodeUserAgentVersion, protowire.BytesType)
		b = protowire.AppendString(b, n.UserAgentVersion)
	}
	return b, nil
}

// appendString appends a proto3 string field, omitted when empty.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendStrings appends a repeated string field.
func appendStrings(b []byte, num protowire.Number, ss []string) []byte {
	for _, s := range ss {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

// appendMessage appends an embedded message field (present even when empty).
func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}
