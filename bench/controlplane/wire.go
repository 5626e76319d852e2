package controlplane

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The simulated proxies read responses in their wire form: a response of
// 10,000 services is ~12 MB, and 1,000 proxies decoding every resource into
// messages (and keeping them) cost more than the control plane they measure.
// A proxy scans only what it acts on: version, nonce and type, the names of
// Delta resources, the clusters' EDS names and the listeners' route names;
// the rest stays bytes in a pooled buffer that is reused once the response
// is handled (and ACKed, only after it arrived whole).

// inMsg is a received message: b is a pooled copy of its bytes.
type inMsg struct{ b []byte }

// outMsg is a request: head marshaled, then tail (already encoded fields,
// shared and never modified, e.g. a SotW subscription's resource_names).
type outMsg struct {
	head proto.Message
	tail []byte
}

// wireCodec is the simulated proxies' gRPC codec (passed per stream with
// grpc.ForceCodecV2).
type wireCodec struct{ pool *bufPool }

func (wireCodec) Name() string { return "proto" }

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*outMsg)
	if !ok {
		return nil, fmt.Errorf("wire codec: cannot marshal %T", v)
	}
	b, err := proto.Marshal(m.head)
	if err != nil {
		return nil, err
	}
	out := mem.BufferSlice{mem.SliceBuffer(b)}
	if len(m.tail) > 0 {
		out = append(out, mem.SliceBuffer(m.tail))
	}
	return out, nil
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*inMsg)
	if !ok {
		return fmt.Errorf("wire codec: cannot unmarshal into %T", v)
	}
	m.b = c.pool.get(data.Len())
	data.CopyTo(m.b)
	return nil
}

// bufPool pools byte slices by power-of-two capacity.
type bufPool struct{ classes [48]sync.Pool }

func (p *bufPool) get(n int) []byte {
	c := bits.Len(uint(n))
	if v := p.classes[c].Get(); v != nil {
		return (*v.(*[]byte))[:n]
	}
	return make([]byte, n, 1<<c)
}

func (p *bufPool) put(b []byte) {
	if cap(b) == 0 {
		return
	}
	c := bits.Len(uint(cap(b))) - 1 // cap is 1<<c
	if cap(b) != 1<<c {
		return
	}
	b = b[:0]
	p.classes[c].Put(&b)
}

// response is what a proxy reads of a DiscoveryResponse or a
// DeltaDiscoveryResponse. The byte slices point into the received buffer.
type response struct {
	version, nonce, typeURL string   // version: system_version_info for Delta
	values                  [][]byte // each resource's serialized message (Any.value)
	names                   [][]byte // Delta: each resource's name
	removed                 [][]byte // Delta: removed_resources
}

func (r *response) reset() {
	r.version, r.nonce, r.typeURL = "", "", ""
	r.values, r.names, r.removed = r.values[:0], r.names[:0], r.removed[:0]
}

var errMalformed = errors.New("malformed response")

// fields calls f for each field of a message; it fails on a malformed tag or
// value.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errMalformed
		}
		v := b[:n]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(v)
		}
		if err := f(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// anyValue returns an Any's value (field 2).
func anyValue(b []byte) ([]byte, error) {
	var val []byte
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num == 2 && typ == protowire.BytesType {
			val = v
		}
		return nil
	})
	return val, err
}

// parseSotW reads a DiscoveryResponse (version_info 1, resources 2,
// type_url 4, nonce 5).
func parseSotW(b []byte, r *response) error {
	r.reset()
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			r.version = string(v)
		case 2:
			val, err := anyValue(v)
			if err != nil {
				return err
			}
			r.values = append(r.values, val)
		case 4:
			r.typeURL = string(v)
		case 5:
			r.nonce = string(v)
		}
		return nil
	})
}

// parseDelta reads a DeltaDiscoveryResponse (system_version_info 1,
// resources 2 as Resource {version 1, resource 2, name 3}, type_url 4,
// nonce 5, removed_resources 6).
func parseDelta(b []byte, r *response) error {
	r.reset()
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			r.version = string(v)
		case 2:
			var name, val []byte
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if typ != protowire.BytesType {
					return nil
				}
				var err error
				switch num {
				case 2:
					val, err = anyValue(v)
				case 3:
					name = v
				}
				return err
			})
			if err != nil {
				return err
			}
			r.names = append(r.names, name)
			r.values = append(r.values, val)
		case 4:
			r.typeURL = string(v)
		case 5:
			r.nonce = string(v)
		case 6:
			r.removed = append(r.removed, v)
		}
		return nil
	})
}

// encodeNames returns repeated field num of a request holding names
// (DiscoveryRequest.resource_names is 3).
func encodeNames(num protowire.Number, names []string) []byte {
	n := 0
	for _, s := range names {
		n += protowire.SizeTag(num) + protowire.SizeBytes(len(s))
	}
	b := make([]byte, 0, n)
	for _, s := range names {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

// sotwACK is a DiscoveryRequest for typeURL whose resource_names are the
// pre-encoded names.
func sotwACK(typeURL, version, nonce string, names []byte) *outMsg {
	return &outMsg{head: &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce}, tail: names}
}

// interner shares one string per resource name across a fleet's proxies.
type interner struct {
	mu sync.Mutex
	m  map[string]string
}

// strings returns the shared strings of bs.
func (in *interner) strings(bs [][]byte, out []string) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.m == nil {
		in.m = map[string]string{}
	}
	for _, b := range bs {
		s, ok := in.m[string(b)]
		if !ok {
			s = string(b)
			in.m[s] = s
		}
		out = append(out, s)
	}
	return out
}
