package ads

import (
	"unicode/utf8"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Codec returns the gRPC codec for a server carrying the ADS service
// (grpc.ForceServerCodecV2): it writes discovery responses without copying
// their resources. A resource's wire form is shared by every proxy that gets
// it (model.Encoded, marshalCache); the default codec would copy it into a
// fresh buffer per response, which for a route configuration of hundreds of
// kilobytes sent to a thousand proxies is most of a push's cost. Here the
// response is a list of buffers: the envelope's own fields, small headers,
// and the shared resource bytes themselves. The bytes are exactly those of
// deterministic proto.Marshal (TestCodecMatchesProtoMarshal). SotW requests
// are decoded by a requestDecoder, which shares resource names' strings
// between requests. Every other message goes to the default proto codec.
func Codec() encoding.CodecV2 {
	// The head buffers' sizes are every power of two from 2 KiB to 1 MiB,
	// so that a head takes at most twice its size. An on-demand push's
	// head is ~1.2 KB: gRPC's default pool gave it 4 KiB, and with a
	// thousand in flight at once the pool held 4 MB (6 KB per proxy in
	// cpbench's heap figure). Heads of a kilobyte or less are not pooled
	// (mem.IsBelowBufferPoolingThreshold); larger than 1 MiB ones come
	// from the pool's fallback, sized to the page.
	heads, err := mem.NewBinaryTieredBufferPool(11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
	if err != nil {
		panic(err) // constant, valid exponents: never
	}
	return newCodec(heads)
}

// newCodec is Codec with the pool its responses' head buffers come from
// (tests pass one that checks what is returned to it).
func newCodec(heads mem.BufferPool) codec {
	return codec{fallback: encoding.GetCodecV2(grpcproto.Name), requests: newRequestDecoder(), heads: heads}
}

// ServerOptions are the gRPC server options a server carrying the ADS
// service needs: the codec, static flow-control windows (serverWindow), and
// large write buffers.
//
// With grpc-go's default dynamic windows the server starts a BDP ping on
// every request it receives after a quiet spell, which in ADS is every ACK:
// each response to each proxy then cost one more write (window update and
// ping) and one more read (the ping's ACK), a third of the system calls of a
// push, while the estimate never grows a window (ACKs are small).
//
// grpc-go copies a response's DATA frames into its connection's write
// buffer and writes the buffer to the socket each time it fills: with its
// default of 32 KiB, a 470 KB route configuration left in 15 system calls
// per proxy. DefaultWriteBuffer makes it four. The buffers come from a
// pool shared by the server's connections (grpc-go's default since
// SharedWriteBuffer was deprecated): a connection holds one only while it
// writes, so an idle one holds none. When more connections write at once
// than the pool holds (or a GC emptied it), a push allocates a buffer for
// each: at 256 KiB that was 70-155 MB in one change of 25 and the GC cycle
// it set off, at 128 KiB 23-106 MB, with no more CPU per config change.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(Codec()),
		grpc.InitialWindowSize(serverWindow),
		grpc.InitialConnWindowSize(serverWindow),
		grpc.WriteBufferSize(DefaultWriteBuffer),
	}
}

// serverWindow is the server's receive window, for each stream and for each
// connection. grpc-go sends a WINDOW_UPDATE each time a quarter of a window
// has been received (or read), and a SotW proxy's ACK repeats its whole
// subscription: an EDS ACK naming a thousand clusters is about 47 KB. With
// 1 MiB windows every sixth endpoint change had each of a thousand
// connections cross the threshold on the same ACK, and each connection's
// writer took a write buffer from the shared pool for its 13-byte frame and
// yielded (grpc-go's loopyWriter waits one runtime.Gosched for more data
// before writing a small batch) while holding it: 650 buffers at once, 71 MB
// of the 10 endpoint changes' allocations in cpbench's heap profile, and the
// change twice as expensive as the others. At 4 MiB that happens a quarter
// as often, and with a quarter of the update frames. A client can make the
// server buffer no more than a window of a stream's unread data; grpc-go
// already lets a stream send a whole message of up to the 4 MiB it accepts
// (MaxRecvMsgSize's default) whatever the window, so 4 MiB adds nothing to
// that bound.
const serverWindow = 4 << 20

// DefaultWriteBuffer is the size of the write buffer a connection of
// ServerOptions takes from grpc-go's shared pool while it writes.
const DefaultWriteBuffer = 128 << 10

type codec struct {
	fallback encoding.CodecV2
	requests *requestDecoder
	// heads holds the head buffers of responses (spliced): gRPC frees a
	// response's buffers once it has written them, which returns the head
	// to the pool. A head was a kilobyte per proxy per on-demand push, a
	// third of a config change's allocations.
	heads mem.BufferPool
}

func (c codec) Name() string { return grpcproto.Name }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch v.(type) {
	case *sotwRequest, *discoveryv3.DiscoveryRequest:
	default:
		return c.fallback.Unmarshal(data, v)
	}
	// The decoded request copies what it keeps: the buffers may be reused
	// once Unmarshal returns.
	if len(data) == 1 {
		return c.decodeRequest(data[0].ReadOnlyData(), v)
	}
	// A long ACK arrives in several buffers: joined in a reused buffer
	// rather than a fresh, zeroed one per request.
	n := data.Len()
	bp, _ := c.requests.bufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < n {
		b := make([]byte, n)
		bp = &b
	}
	b := (*bp)[:n]
	data.CopyTo(b)
	err := c.decodeRequest(b, v)
	if n <= maxPooledRequest {
		*bp = b
		c.requests.bufs.Put(bp)
	}
	return err
}

// decodeRequest decodes a SotW request (v is one of the two types Unmarshal
// hands it).
func (c codec) decodeRequest(b []byte, v any) error {
	if r, ok := v.(*sotwRequest); ok {
		return c.requests.decodeSotw(b, r)
	}
	return c.requests.decode(b, v.(*discoveryv3.DiscoveryRequest))
}

// maxPooledRequest bounds the join buffers kept for reuse.
const maxPooledRequest = 1 << 20

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	var out mem.BufferSlice
	var ok bool
	var err error
	switch m := v.(type) {
	case *discoveryv3.DiscoveryResponse:
		out, ok, err = marshalSotwResponse(m, nil, c.heads)
	case *discoveryv3.DeltaDiscoveryResponse:
		out, ok, err = marshalDeltaResponse(m, nil, c.heads)
	case *sotwResponse:
		out, ok, err = marshalSotwResponse(m.msg, m.pieced, c.heads)
	case *deltaResponse:
		out, ok, err = marshalDeltaResponse(m.msg, m.pieced, c.heads)
	}
	if err != nil || ok {
		return out, err
	}
	switch m := v.(type) { // written whole, with pieced values joined
	case *sotwResponse:
		v = m.joined()
	case *deltaResponse:
		v = m.joined()
	}
	return c.fallback.Marshal(v)
}

// responseResourcesField is resources in both DiscoveryResponse and
// DeltaDiscoveryResponse.
const responseResourcesField protowire.Number = 2

// inlineBelow: resource bytes shorter than this are copied into the header
// buffer rather than referenced, so that a response of many small resources
// (load assignments) stays a few buffers.
const inlineBelow = 1024

// spliced builds a response as buffers: small parts are appended to head,
// large resource bytes are referenced as they are. The parts of head are
// only cut (a nil entry in parts, its length in cuts) until finish, because
// head may be regrown (copied) as it fills and because head is one pooled
// array that all its parts must share: gRPC frees each part once written,
// and the array goes back to the pool when the last one is.
type spliced struct {
	parts mem.BufferSlice
	cuts  []int
	head  []byte
	from  int // start of head's part not yet cut
	// pooled is the pool's array head started in (nil when head was
	// allocated); pool is where it goes back.
	pooled *[]byte
	pool   mem.BufferPool
}

// newSpliced starts a response whose head needs about size bytes, in an
// array from pool when one that size is pooled.
func newSpliced(size int, pool mem.BufferPool) *spliced {
	s := &spliced{pool: pool}
	if pool == nil || mem.IsBelowBufferPoolingThreshold(size) {
		s.head = make([]byte, 0, size)
		return s
	}
	s.pooled = pool.Get(size)
	s.head = (*s.pooled)[:0]
	return s
}

func (s *spliced) flush() {
	if len(s.head) > s.from {
		s.parts = append(s.parts, nil)
		s.cuts = append(s.cuts, len(s.head)-s.from)
	}
	s.from = len(s.head)
}

func (s *spliced) bytes(b []byte) {
	if len(b) < inlineBelow {
		s.head = append(s.head, b...)
		return
	}
	s.flush()
	s.parts = append(s.parts, mem.SliceBuffer(b))
}

// inPool reports whether head is still the pooled array (appending did not
// regrow it).
func (s *spliced) inPool() bool {
	return s.pooled != nil && cap(s.head) == cap(*s.pooled) && cap(s.head) > 0 && &s.head[:1][0] == &(*s.pooled)[:1][0]
}

// finish returns the response's buffers: the parts of head become buffers
// sharing one owner (mem.SplitUnsafe), the pooled array when head is still
// in it.
func (s *spliced) finish() mem.BufferSlice {
	s.flush()
	var rest mem.Buffer
	if s.inPool() {
		*s.pooled = s.head
		rest = mem.NewBuffer(s.pooled, s.pool)
	} else {
		s.release()
		rest = mem.SliceBuffer(s.head)
	}
	s.pooled = nil
	if len(s.cuts) == 0 {
		rest.Free()
		return s.parts
	}
	k := 0
	for i, p := range s.parts {
		if p != nil {
			continue
		}
		if k == len(s.cuts)-1 {
			s.parts[i] = rest
			break
		}
		s.parts[i], rest = mem.SplitUnsafe(rest, s.cuts[k])
		k++
	}
	return s.parts
}

// release returns the pooled array unused (an error, or head regrown out
// of it: nothing refers to it, since parts of head are only cut in finish).
func (s *spliced) release() {
	if s.pooled != nil {
		s.pool.Put(s.pooled)
		s.pooled = nil
	}
}

// envelope marshals m without its resources and returns the bytes before
// and after where they go (fields are written in number order).
func envelope(m proto.Message) (before, after []byte, ok bool, err error) {
	src := m.ProtoReflect()
	if len(src.GetUnknown()) > 0 {
		return nil, nil, false, nil
	}
	rest := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != responseResourcesField {
			rest.Set(fd, v)
		}
		return true
	})
	b, err := deterministic.Marshal(rest.Interface())
	if err != nil {
		return nil, nil, false, err
	}
	split, err := fieldsBefore(b, responseResourcesField)
	if err != nil {
		return nil, nil, false, err
	}
	return b[:split], b[split:], true, nil
}

// sotwEnvelope is envelope for the responses mastd sends (no control
// plane, resource errors or unknown fields), written field by field
// instead of through reflection, which was a tenth of the CPU of sending a
// response to each of a thousand proxies. ok is false for any other
// response, and for strings that are not valid UTF-8 (proto.Marshal's error
// then comes from envelope).
func sotwEnvelope(m *discoveryv3.DiscoveryResponse) (before, after []byte, ok bool) {
	if m.ControlPlane != nil || len(m.ResourceErrors) > 0 || len(m.ProtoReflect().GetUnknown()) > 0 ||
		!utf8.ValidString(m.VersionInfo) || !utf8.ValidString(m.TypeUrl) || !utf8.ValidString(m.Nonce) {
		return nil, nil, false
	}
	b := make([]byte, 0, 16+len(m.VersionInfo)+len(m.TypeUrl)+len(m.Nonce))
	b = appendStringField(b, 1, m.VersionInfo)
	split := len(b)
	if m.Canary {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	b = appendStringField(b, 4, m.TypeUrl)
	b = appendStringField(b, 5, m.Nonce)
	return b[:split:split], b[split:], true
}

// deltaEnvelope is sotwEnvelope for a DeltaDiscoveryResponse: its own
// fields but the resources, for responses with no removed resource names
// (the TTL form), control plane, resource errors or unknown fields.
func deltaEnvelope(m *discoveryv3.DeltaDiscoveryResponse) (before, after []byte, ok bool) {
	if m.ControlPlane != nil || len(m.ResourceErrors) > 0 || len(m.RemovedResourceNames) > 0 || len(m.ProtoReflect().GetUnknown()) > 0 ||
		!utf8.ValidString(m.SystemVersionInfo) || !utf8.ValidString(m.TypeUrl) || !utf8.ValidString(m.Nonce) {
		return nil, nil, false
	}
	n := 16 + len(m.SystemVersionInfo) + len(m.TypeUrl) + len(m.Nonce)
	for _, r := range m.RemovedResources {
		if !utf8.ValidString(r) {
			return nil, nil, false
		}
		n += 3 + len(r)
	}
	b := make([]byte, 0, n)
	b = appendStringField(b, 1, m.SystemVersionInfo)
	split := len(b)
	b = appendStringField(b, 4, m.TypeUrl)
	b = appendStringField(b, 5, m.Nonce)
	for _, r := range m.RemovedResources {
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendString(b, r)
	}
	return b[:split:split], b[split:], true
}

// appendStringField appends a proto3 string field, which is left out when empty.
func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// inlineSize is the total length of the resource values that spliced.bytes
// copies into the head (those shorter than inlineBelow).
func inlineSize[T any](rs []T, value func(T) []byte) int {
	n := 0
	for _, r := range rs {
		if v := value(r); len(v) < inlineBelow {
			n += len(v)
		}
	}
	return n
}

// piecedInline is inlineSize of the pieced values' pieces.
func piecedInline(pieced []piecedValue) int {
	n := 0
	for _, p := range pieced {
		n += inlineSize(p.pieces, func(b []byte) []byte { return b })
	}
	return n
}

// headSize is the head buffer's capacity for a response of n resources
// whose inlined values take inline bytes: their own bytes plus room for
// each resource's tags, lengths, type URL, name and version, so that the
// head is not regrown (and copied) resource by resource.
func headSize(n, inline int) int { return inline + 160*n }

// plainAny reports whether a can be written from its two fields alone.
func plainAny(a *anypb.Any) bool {
	return a != nil && len(a.ProtoReflect().GetUnknown()) == 0
}

// anySize is the encoded size of a's fields, with the value in pieces
// when there are any (pieced values).
func anySize(a *anypb.Any, pieces [][]byte) int {
	n := 0
	if a.TypeUrl != "" {
		n += protowire.SizeTag(1) + protowire.SizeBytes(len(a.TypeUrl))
	}
	if v := valueLen(a, pieces); v > 0 {
		n += protowire.SizeTag(2) + protowire.SizeBytes(v)
	}
	return n
}

// valueLen is the length of a's value, or of pieces when there are any.
func valueLen(a *anypb.Any, pieces [][]byte) int {
	if pieces != nil {
		return piecesLen(pieces)
	}
	return len(a.Value)
}

// any writes a's fields (not its tag and length), with the value in
// pieces when there are any, each written as bytes writes it.
func (s *spliced) any(a *anypb.Any, pieces [][]byte) {
	if a.TypeUrl != "" {
		s.head = protowire.AppendTag(s.head, 1, protowire.BytesType)
		s.head = protowire.AppendString(s.head, a.TypeUrl)
	}
	if v := valueLen(a, pieces); v > 0 {
		s.head = protowire.AppendTag(s.head, 2, protowire.BytesType)
		s.head = protowire.AppendVarint(s.head, uint64(v))
		if pieces == nil {
			s.bytes(a.Value)
		}
		for _, p := range pieces {
			s.bytes(p)
		}
	}
}

// marshalSotwResponse writes m, the values of its resources that pieced
// lists in pieces; ok is false for a response it does not handle.
func marshalSotwResponse(m *discoveryv3.DiscoveryResponse, pieced []piecedValue, pool mem.BufferPool) (mem.BufferSlice, bool, error) {
	if len(m.Resources) == 0 {
		return nil, false, nil
	}
	for _, a := range m.Resources {
		if !plainAny(a) {
			return nil, false, nil
		}
	}
	before, after, ok := sotwEnvelope(m)
	if !ok {
		var err error
		if before, after, ok, err = envelope(m); !ok || err != nil {
			return nil, false, err
		}
	}
	inline := inlineSize(m.Resources, func(a *anypb.Any) []byte { return a.Value }) + piecedInline(pieced)
	s := newSpliced(len(before)+len(after)+headSize(len(m.Resources), inline), pool)
	s.head = append(s.head, before...)
	for i, a := range m.Resources {
		var pieces [][]byte
		pieces, pieced = valueAt(pieced, i)
		s.head = protowire.AppendTag(s.head, responseResourcesField, protowire.BytesType)
		s.head = protowire.AppendVarint(s.head, uint64(anySize(a, pieces)))
		s.any(a, pieces)
	}
	s.head = append(s.head, after...)
	return s.finish(), true, nil
}

// Resource fields written by marshalDeltaResponse; a resource with any other
// field set is marshaled whole.
const (
	resourceVersionField protowire.Number = 1
	resourceAnyField     protowire.Number = 2
	resourceNameField    protowire.Number = 3
)

// plainResource reports whether r has only a name, a version and a plain Any.
func plainResource(r *discoveryv3.Resource) bool {
	if r == nil || len(r.Aliases) > 0 || r.Ttl != nil || r.CacheControl != nil || r.Metadata != nil || len(r.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	return r.Resource == nil || plainAny(r.Resource)
}

// marshalDeltaResponse is marshalSotwResponse for a DeltaDiscoveryResponse.
func marshalDeltaResponse(m *discoveryv3.DeltaDiscoveryResponse, pieced []piecedValue, pool mem.BufferPool) (mem.BufferSlice, bool, error) {
	if len(m.Resources) == 0 {
		return nil, false, nil
	}
	before, after, ok := deltaEnvelope(m)
	if !ok {
		var err error
		if before, after, ok, err = envelope(m); !ok || err != nil {
			return nil, false, err
		}
	}
	inline := inlineSize(m.Resources, func(r *discoveryv3.Resource) []byte { return r.GetResource().GetValue() }) + piecedInline(pieced)
	s := newSpliced(len(before)+len(after)+headSize(len(m.Resources), inline), pool)
	s.head = append(s.head, before...)
	for i, r := range m.Resources {
		var pieces [][]byte
		pieces, pieced = valueAt(pieced, i)
		if pieces != nil && (!plainResource(r) || r.Resource == nil) {
			s.release() // written whole, with the value joined
			return nil, false, nil
		}
		s.head = protowire.AppendTag(s.head, responseResourcesField, protowire.BytesType)
		if !plainResource(r) {
			b, err := deterministic.Marshal(r)
			if err != nil {
				s.release()
				return nil, false, err
			}
			s.head = protowire.AppendVarint(s.head, uint64(len(b)))
			s.bytes(b)
			continue
		}
		n := 0
		if r.Version != "" {
			n += protowire.SizeTag(resourceVersionField) + protowire.SizeBytes(len(r.Version))
		}
		if r.Resource != nil {
			n += protowire.SizeTag(resourceAnyField) + protowire.SizeBytes(anySize(r.Resource, pieces))
		}
		if r.Name != "" {
			n += protowire.SizeTag(resourceNameField) + protowire.SizeBytes(len(r.Name))
		}
		s.head = protowire.AppendVarint(s.head, uint64(n))
		if r.Version != "" {
			s.head = protowire.AppendTag(s.head, resourceVersionField, protowire.BytesType)
			s.head = protowire.AppendString(s.head, r.Version)
		}
		if r.Resource != nil {
			s.head = protowire.AppendTag(s.head, resourceAnyField, protowire.BytesType)
			s.head = protowire.AppendVarint(s.head, uint64(anySize(r.Resource, pieces)))
			s.any(r.Resource, pieces)
		}
		if r.Name != "" {
			s.head = protowire.AppendTag(s.head, resourceNameField, protowire.BytesType)
			s.head = protowire.AppendString(s.head, r.Name)
		}
	}
	s.head = append(s.head, after...)
	return s.finish(), true, nil
}
