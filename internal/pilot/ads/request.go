package ads

import (
	"bytes"
	"sync"
	"unicode/utf8"
	"unique"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// requestDecoder decodes SotW DiscoveryRequests without a fresh string per
// resource name. A SotW client repeats its whole subscription in every ACK:
// a sidecar's EDS ACK names every cluster it uses (a thousand names at 1,000
// services), and proto.Unmarshal allocated and UTF-8-checked each of them on
// every push to every proxy, most of what an endpoint change cost mastd. Here
// a name already seen is looked up by its bytes (no allocation, no check)
// and the request holds the canonical string, the one the subscription sets
// hold (unique.Make), so comparing the list with a proxy's set compares
// pointers. Anything but the fields below, well formed, goes to proto.Unmarshal,
// so the result is always exactly proto.Unmarshal's (FuzzDecodeRequest).
type requestDecoder struct {
	mu    sync.RWMutex
	names map[string]string // name -> canonical string, at most maxInterned
	bufs  sync.Pool         // *[]byte: buffers joining a request received in parts
}

const (
	maxInterned    = 1 << 17 // names kept: a client cannot grow the table without bound
	maxInternedLen = 512     // longer names are decoded plainly
)

func newRequestDecoder() *requestDecoder {
	return &requestDecoder{names: map[string]string{}}
}

// canonical returns the string of b, shared with earlier requests naming
// the same resource; ok is false when b is not valid UTF-8.
func (d *requestDecoder) canonical(b []byte) (s string, ok bool) {
	if len(b) > maxInternedLen {
		return string(b), utf8.Valid(b)
	}
	d.mu.RLock()
	s, ok = d.names[string(b)]
	d.mu.RUnlock()
	if ok {
		return s, true
	}
	if !utf8.Valid(b) {
		return "", false
	}
	s = unique.Make(string(b)).Value()
	d.mu.Lock()
	if len(d.names) < maxInterned {
		d.names[s] = s
	}
	d.mu.Unlock()
	return s, true
}

// decode fills m (reset first) from b exactly as proto.Unmarshal would.
func (d *requestDecoder) decode(b []byte, m *discoveryv3.DiscoveryRequest) error {
	if !d.decodeFast(b, m) {
		return proto.Unmarshal(b, m)
	}
	return nil
}

// decodeFast decodes the common fields; false means b needs proto.Unmarshal
// (another field, another wire type, bad UTF-8, a malformed message).
func (d *requestDecoder) decodeFast(b []byte, m *discoveryv3.DiscoveryRequest) bool {
	return d.decodeFields(b, m, countNames(b), nil)
}

// requestNamesField is resource_names in DiscoveryRequest.
const requestNamesField protowire.Number = 3

// decodeFields fills m (reset first) from b, the names decoded one by one
// into a list of capacity nameCap; or, with repeated, from a request whose
// names are one run of fields that repeated matches whole (it returns the
// run's length, 0 for no match) and are left out of m. false means b needs
// the other path.
func (d *requestDecoder) decodeFields(b []byte, m *discoveryv3.DiscoveryRequest, nameCap int, repeated func([]byte) int) bool {
	proto.Reset(m)
	var names []string
	if nameCap > 0 {
		names = make([]string, 0, nameCap)
	}
	matched := false
	merge := proto.UnmarshalOptions{Merge: true}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		if num == requestNamesField && repeated != nil {
			// The subscription's fields all at once, once.
			l := 0
			if !matched {
				l = repeated(b)
			}
			if l <= 0 {
				return false
			}
			b, matched = b[l:], true
			continue
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case 1: // version_info
			if !utf8.Valid(v) {
				return false
			}
			m.VersionInfo = string(v)
		case 2: // node
			if m.Node == nil {
				m.Node = &corev3.Node{}
			}
			if merge.Unmarshal(v, m.Node) != nil {
				return false
			}
		case requestNamesField:
			s, ok := d.canonical(v)
			if !ok {
				return false
			}
			names = append(names, s)
		case 4: // type_url
			s, ok := d.canonical(v)
			if !ok {
				return false
			}
			m.TypeUrl = s
		case 5: // response_nonce
			if !utf8.Valid(v) {
				return false
			}
			m.ResponseNonce = string(v)
		case 6: // error_detail
			if m.ErrorDetail == nil {
				m.ErrorDetail = &status.Status{}
			}
			if merge.Unmarshal(v, m.ErrorDetail) != nil {
				return false
			}
		default:
			return false
		}
	}
	if len(names) > 0 {
		m.ResourceNames = names
	}
	return repeated == nil || matched
}

// countNames counts the resource_names fields of an encoded request, so the
// list is allocated once; it stops at anything malformed (decodeFast then
// gives up anyway).
func countNames(b []byte) int {
	count := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return count
		}
		l := protowire.ConsumeFieldValue(num, typ, b[n:])
		if l < 0 {
			return count
		}
		if num == 3 {
			count++
		}
		b = b[n+l:]
	}
	return count
}

// sotwRequest is a DiscoveryRequest received on a SotW stream. With the
// server's codec, an ACK repeating the stream's current subscription of its
// type is not decoded name by name: the decoder compares its names in order
// with the subscription's canonical strings (a comparison of bytes, no
// hashing, no allocation) and, when they are the same, notes the set instead
// of filling ResourceNames. Any other codec fills ResourceNames as usual
// (the embedded message is a proto.Message).
type sotwRequest struct {
	*discoveryv3.DiscoveryRequest
	conn *conn // the stream's connection; nil for its first request

	// subscribed, when same is true, holds the request's resource names:
	// exactly this set's names, in its order; ResourceNames is then empty.
	subscribed nameSet
	same       bool
}

// names returns the request's resource names.
func (r *sotwRequest) names() []string {
	if r.same {
		return r.subscribed.strings()
	}
	return r.ResourceNames
}

// setSotwRequestNames applies a request's subscription to w (setSotwNames),
// in constant time when the request repeats w's current set.
func (w *watch) setSotwRequestNames(r *sotwRequest) bool {
	if r.same && !w.wildcard && len(w.names) == len(r.subscribed) && &w.names[0] == &r.subscribed[0] {
		return false
	}
	return w.setSotwNames(r.names())
}

// repeatedSubscription reports whether b, an encoded request from its tag
// of resource_names on, starts with the requestWire of one of the stream's
// explicit SotW subscriptions, and returns that watch's type URL and set
// and the wire's length. A set is replaced, never modified in place, so
// the caller may keep it without the lock.
func (c *conn) repeatedSubscription(b []byte) (typeURL string, set nameSet, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.ordered {
		if !w.wildcard && len(w.wire) > 0 && bytes.HasPrefix(b, w.wire) {
			return w.typeURL, w.names, len(w.wire)
		}
	}
	return "", nil, 0
}

// decodeSotw decodes a request received on a SotW stream into r, exactly as
// decode would, but without decoding the resource names when they repeat the
// stream's subscription of the request's type: their bytes are then those
// of the subscription's wire form (requestWire), compared at once.
func (d *requestDecoder) decodeSotw(b []byte, r *sotwRequest) error {
	r.subscribed, r.same = nil, false
	if r.conn != nil {
		var typeURL string
		var set nameSet
		repeated := func(b []byte) int {
			var n int
			typeURL, set, n = r.conn.repeatedSubscription(b)
			return n
		}
		if d.decodeFields(b, r.DiscoveryRequest, 0, repeated) && r.TypeUrl == typeURL {
			r.subscribed, r.same = set, true
			return nil
		}
	}
	return d.decode(b, r.DiscoveryRequest)
}
