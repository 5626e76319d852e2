package ads

import (
	"fmt"
	"reflect"
	"sync"
	"unsafe"
	"weak"

	"github.com/cespare/xxhash/v2"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// marshalCache holds the wire form of the messages the generators share
// between proxies within one push: model.PushContext.Memo hands every proxy
// the same immutable ClusterLoadAssignment, so each is marshaled (and, for
// Delta, hashed) once per push instead of once per proxy. It belongs to one
// push context and is dropped when the push context changes.
//
// Nested messages (virtual hosts, from which route configurations are
// assembled) go to nested, which the server keeps across pushes: generate.Cache
// keeps a default virtual host's message across pushes while its inputs are
// unchanged, so a route configuration rebuilt after a VirtualService change
// re-marshals only the virtual hosts that changed. Generated messages are
// never modified once built, so a message's identity names its bytes.
//
// Messages are keyed by identity through weak pointers, which stay distinct
// for a new message allocated where a collected one was, and keep nothing
// alive. A message is cached the second time it is seen, so per-proxy
// messages (a VirtualService's virtual host, the catch-all one) cost a marker,
// not a copy of their bytes; markers of collected messages are swept as the
// map grows. Only the types the generators share are looked up: a lookup
// costs about as much as marshaling a small message.
type marshalCache struct {
	pc     *model.PushContext
	shards [cacheShards]cacheShard
	nested *marshalCache // nil: nested messages are cached in this one
}

const (
	cacheShards = 16
	minSweepAt  = 1024 // entries per shard before markers are first swept
)

type cacheShard struct {
	mu      sync.Mutex
	entries map[weak.Pointer[byte]]*wireMsg // nil: seen once
	sweepAt int
}

// wireMsg is a message in wire form. Immutable once in the cache, except for
// the lazily computed version (guarded by the shard's mutex).
type wireMsg struct {
	b       []byte
	any     *anypb.Any // set for top-level resources
	version uint64
	hashed  bool
}

func newMarshalCache(pc *model.PushContext) *marshalCache {
	c := &marshalCache{pc: pc}
	for i := range c.shards {
		c.shards[i].entries = map[weak.Pointer[byte]]*wireMsg{}
		c.shards[i].sweepAt = minSweepAt
	}
	return c
}

// msgPointer returns the address of a generated message (they are pointers
// to structs), or nil when m is not a non-nil pointer.
func msgPointer(m proto.Message) unsafe.Pointer {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	return v.UnsafePointer()
}

// cacheKey is the identity of the message at p.
type cacheKey = weak.Pointer[byte]

func keyOf(p unsafe.Pointer) cacheKey { return weak.Make((*byte)(p)) }

func (c *marshalCache) shard(p unsafe.Pointer) *cacheShard {
	u := uintptr(p)
	return &c.shards[(u>>6^u>>12)%cacheShards]
}

// lookup returns the cached wire form of the message at p, or nil; it
// reports whether the caller should store the message once marshaled (it has
// been seen before).
func (c *marshalCache) lookup(p unsafe.Pointer) (w *wireMsg, keep bool) {
	k := keyOf(p)
	s := c.shard(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	w, seen := s.entries[k]
	if w != nil {
		return w, false
	}
	if seen {
		return nil, true
	}
	s.entries[k] = nil
	if len(s.entries) >= s.sweepAt {
		for k := range s.entries {
			if k.Value() == nil { // collected: a marker, or a message of an old push
				delete(s.entries, k)
			}
		}
		s.sweepAt = max(minSweepAt, 2*len(s.entries))
	}
	return nil, false
}

// store caches w for the message at p and returns the cached entry (another
// goroutine's, if it stored first).
func (c *marshalCache) store(p unsafe.Pointer, w *wireMsg) *wireMsg {
	k := keyOf(p)
	s := c.shard(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.entries[k]; old != nil {
		return old
	}
	s.entries[k] = w
	return w
}

// versionOf returns w's Delta version, computing it once.
func (c *marshalCache) versionOf(p unsafe.Pointer, w *wireMsg) uint64 {
	s := c.shard(p)
	s.mu.Lock()
	if w.hashed {
		v := w.version
		s.mu.Unlock()
		return v
	}
	s.mu.Unlock()
	v := hashBytes(w.b)
	s.mu.Lock()
	w.version, w.hashed = v, true
	s.mu.Unlock()
	return v
}

// hashBytes is the Delta per-resource version: xxHash64 of the wire form
// (an order of magnitude faster than FNV on route configurations of hundreds
// of kilobytes), stable across restarts of mastd so that a reconnecting
// client's initial_resource_versions stay valid.
func hashBytes(b []byte) uint64 { return xxhash.Sum64(b) }

var deterministic = proto.MarshalOptions{Deterministic: true}

// resource returns the wire form of a top-level resource of typeURL, and its
// Delta version when withVersion. c may be nil (no caching).
func (c *marshalCache) resource(typeURL string, m proto.Message, withVersion bool) (*anypb.Any, uint64, error) {
	var p unsafe.Pointer
	keep := false
	if c != nil && typeURL == EndpointType { // load assignments are shared (Memo)
		if p = msgPointer(m); p != nil {
			var w *wireMsg
			if w, keep = c.lookup(p); w != nil {
				var v uint64
				if withVersion {
					v = c.versionOf(p, w)
				}
				a := w.any
				if a == nil { // cached as a nested message
					a = &anypb.Any{TypeUrl: typeURL, Value: w.b}
				}
				return a, v, nil
			}
		}
	}
	b, err := c.marshal(typeURL, m)
	if err != nil {
		return nil, 0, err
	}
	w := &wireMsg{b: b, any: &anypb.Any{TypeUrl: typeURL, Value: b}}
	if withVersion {
		w.version, w.hashed = hashBytes(b), true
	}
	if keep {
		w = c.store(p, w)
		if withVersion {
			return w.any, c.versionOf(p, w), nil
		}
	}
	return w.any, w.version, nil
}

// marshal serializes a top-level resource deterministically. Route
// configurations are assembled from their virtual hosts' cached wire forms.
func (c *marshalCache) marshal(typeURL string, m proto.Message) ([]byte, error) {
	if rc, ok := m.(*routev3.RouteConfiguration); ok && c != nil && typeURL == RouteType {
		if b, ok, err := c.marshalRoute(rc); ok || err != nil {
			return b, err
		}
	}
	return deterministic.Marshal(m)
}

// sub returns the wire form of a nested message, cached like a resource.
func (c *marshalCache) sub(m proto.Message) ([]byte, error) {
	if c.nested != nil {
		c = c.nested
	}
	p := msgPointer(m)
	w, keep := c.lookup(p)
	if w != nil {
		return w.b, nil
	}
	b, err := deterministic.Marshal(m)
	if err != nil {
		return nil, err
	}
	if keep {
		b = c.store(p, &wireMsg{b: b}).b
	}
	return b, nil
}

// vhostsField is RouteConfiguration.virtual_hosts.
const vhostsField protowire.Number = 2

// marshalRoute produces exactly deterministic.Marshal(rc) from the cached
// wire forms of its virtual hosts: the route configuration's other fields
// are marshaled on their own and the virtual hosts are spliced in at field 2's
// position (protobuf-go writes known fields in field number order; the
// byte-identity tests hold it to that). ok is false when rc has nothing to
// splice or carries unknown fields.
func (c *marshalCache) marshalRoute(rc *routev3.RouteConfiguration) ([]byte, bool, error) {
	if len(rc.VirtualHosts) == 0 || len(rc.ProtoReflect().GetUnknown()) > 0 {
		return nil, false, nil
	}
	for _, vh := range rc.VirtualHosts {
		if vh == nil {
			return nil, false, nil
		}
	}
	src := rc.ProtoReflect()
	rest := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != vhostsField {
			rest.Set(fd, v)
		}
		return true
	})
	rb, err := deterministic.Marshal(rest.Interface())
	if err != nil {
		return nil, false, err
	}
	split, err := fieldsBefore(rb, vhostsField)
	if err != nil {
		return nil, false, err
	}
	parts := make([][]byte, len(rc.VirtualHosts))
	size := len(rb)
	for i, vh := range rc.VirtualHosts {
		b, err := c.sub(vh)
		if err != nil {
			return nil, false, fmt.Errorf("virtual host %q: %w", vh.GetName(), err)
		}
		parts[i] = b
		size += protowire.SizeTag(vhostsField) + protowire.SizeBytes(len(b))
	}
	out := make([]byte, 0, size)
	out = append(out, rb[:split]...)
	for _, b := range parts {
		out = protowire.AppendTag(out, vhostsField, protowire.BytesType)
		out = protowire.AppendBytes(out, b)
	}
	return append(out, rb[split:]...), true, nil
}

// fieldsBefore returns the length of the prefix of the encoded message b
// holding the fields numbered below n.
func fieldsBefore(b []byte, n protowire.Number) (int, error) {
	off := 0
	for off < len(b) {
		num, typ, tl := protowire.ConsumeTag(b[off:])
		if tl < 0 {
			return 0, protowire.ParseError(tl)
		}
		if num > n {
			return off, nil
		}
		vl := protowire.ConsumeFieldValue(num, typ, b[off+tl:])
		if vl < 0 {
			return 0, protowire.ParseError(vl)
		}
		off += tl + vl
	}
	return off, nil
}

// cacheFor returns the marshal cache of pc, creating it when pc is the
// current push context. Connections still generating from an older push
// context get nil (no caching), so they cannot evict the current cache.
func (s *Server) cacheFor(pc *model.PushContext) *marshalCache {
	if s.noCache {
		return nil
	}
	for {
		c := s.cache.Load()
		if c != nil && c.pc == pc {
			return c
		}
		if s.current() != pc {
			return nil
		}
		n := newMarshalCache(pc)
		n.nested = s.nested
		if s.cache.CompareAndSwap(c, n) {
			return n
		}
	}
}
