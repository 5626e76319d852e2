package xdsparse

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The wire decoder reads xDS resources straight from their encoding with
// protowire, so that mast-proxy links none of go-control-plane's
// generated packages (whose code, type data and lazily built tables are
// most of a sidecar's memory). It keeps the generated path's semantics:
//
//   - wireDescs (wiredesc_gen.go, generated from go-control-plane's
//     descriptors by TestWireDescriptors) names every field of every message
//     reachable from a decoded resource, with its wire kind;
//   - validateWire checks a whole resource as proto.Unmarshal would: wire
//     format, field numbers, UTF-8 of every string at any depth (a known
//     field sent with another wire type is an unknown field, skipped);
//   - decodeWire gives one message's fields with proto3's merge rules: the
//     last scalar wins, a singular message seen twice is merged (its
//     encodings concatenated), lists append, a oneof keeps its last member;
//   - checkWire is checkFields over the wire: every set field the rules do
//     not honour or know to be cosmetic is refused by path.

// wireKind is how a field is encoded.
type wireKind uint8

const (
	kBool wireKind = iota
	kEnum
	kInt32
	kInt64
	kUint32
	kUint64
	kSint32
	kSint64
	kFixed32
	kSfixed32
	kFloat
	kFixed64
	kSfixed64
	kDouble
	kString
	kBytes
	kMessage
	kGroup
)

// scalar reports whether k is a number (packable).
func (k wireKind) scalar() bool { return k <= kDouble }

// Field flags.
const (
	fList     uint8 = 1 << iota // repeated (also a map)
	fMap                        // a map: elements are entries (key 1, value 2)
	fPresence                   // explicit presence: a message, a oneof member, proto3 optional
)

type msgDesc struct {
	name   string
	fields []fieldDesc // by number
}

type fieldDesc struct {
	num   protowire.Number
	name  string
	kind  wireKind
	flags uint8
	oneof uint8 // 1 + the oneof's index, 0 for none
	msg   int16 // the message type's index in wireDescs (an enum's in wireEnums), -1 for none
}

type enumDesc struct {
	name   string
	values []enumValue
}

type enumValue struct {
	num  int32
	name string
}

// wireType is the wire type a field of kind k is sent with (packed lists
// aside).
func (k wireKind) wireType() protowire.Type {
	switch k {
	case kFixed32, kSfixed32, kFloat:
		return protowire.Fixed32Type
	case kFixed64, kSfixed64, kDouble:
		return protowire.Fixed64Type
	case kString, kBytes, kMessage:
		return protowire.BytesType
	case kGroup:
		return protowire.StartGroupType
	}
	return protowire.VarintType
}

// find returns the index of field num in d.fields, -1 when unknown.
func (d *msgDesc) find(num protowire.Number) int {
	i := sort.Search(len(d.fields), func(i int) bool { return d.fields[i].num >= num })
	if i < len(d.fields) && d.fields[i].num == num {
		return i
	}
	return -1
}

// errInvalidUTF8 is proto.Unmarshal's error for a string that is not UTF-8.
var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// recursionLimit is protobuf-go's default nesting limit.
const recursionLimit = 10000

// validateWire checks an encoded message of type wireDescs[di] and every
// message inside it as proto.Unmarshal does.
func validateWire(di int16, b []byte) error {
	return validateDepth(di, b, recursionLimit)
}

func validateDepth(di int16, b []byte, depth int) error {
	if depth == 0 {
		return errors.New("exceeded maximum recursion depth")
	}
	d := &wireDescs[di]
	return eachField(b, func(f wireField) error {
		i := d.find(f.num)
		if i < 0 {
			return nil
		}
		fd := &d.fields[i]
		if f.typ != fd.kind.wireType() {
			if fd.flags&fList != 0 && f.typ == protowire.BytesType && fd.kind.scalar() {
				return checkPacked(fd.kind, f.b)
			}
			return nil // an unknown field
		}
		switch fd.kind {
		case kString:
			if !utf8.Valid(f.b) {
				return errInvalidUTF8
			}
		case kMessage:
			if fd.msg >= 0 {
				return validateDepth(fd.msg, f.b, depth-1)
			}
		}
		return nil
	})
}

// checkPacked checks a packed list of scalars.
func checkPacked(k wireKind, b []byte) error {
	for len(b) > 0 {
		var n int
		switch k.wireType() {
		case protowire.Fixed32Type:
			_, n = protowire.ConsumeFixed32(b)
		case protowire.Fixed64Type:
			_, n = protowire.ConsumeFixed64(b)
		default:
			_, n = protowire.ConsumeVarint(b)
		}
		if n < 0 {
			return errWire
		}
		b = b[n:]
	}
	return nil
}

// wireMsg is one decoded message: a value per field of its descriptor.
// Its bytes must have been validated (validateWire).
type wireMsg struct {
	d    *msgDesc
	vals []wireVal
}

type wireVal struct {
	present bool
	n       uint64   // a scalar's last value
	b       []byte   // a string's or bytes' last value; a singular message's encodings, concatenated
	elems   [][]byte // a list's strings, bytes or messages; a map's entries
	nums    []uint64 // a list's scalars
}

// decodeWire decodes one level of a validated message of type wireDescs[di].
func decodeWire(di int16, b []byte) wireMsg {
	d := &wireDescs[di]
	m := wireMsg{d: d, vals: make([]wireVal, len(d.fields))}
	eachField(b, func(f wireField) error {
		i := d.find(f.num)
		if i < 0 {
			return nil
		}
		fd, v := &d.fields[i], &m.vals[i]
		if f.typ != fd.kind.wireType() {
			if fd.flags&fList != 0 && f.typ == protowire.BytesType && fd.kind.scalar() {
				v.nums = appendPacked(v.nums, fd.kind, f.b)
			}
			return nil
		}
		if fd.oneof != 0 {
			for j := range d.fields {
				if j != i && d.fields[j].oneof == fd.oneof {
					m.vals[j] = wireVal{}
				}
			}
		}
		v.present = true
		switch {
		case fd.flags&fList != 0 && fd.kind.scalar():
			v.nums = append(v.nums, f.v)
		case fd.flags&fList != 0:
			v.elems = append(v.elems, f.b)
		case fd.kind == kMessage:
			v.b = concat(v.b, f.b)
		case fd.kind == kString || fd.kind == kBytes:
			v.b = f.b
		default:
			v.n = f.v
		}
		return nil
	})
	return m
}

func appendPacked(out []uint64, k wireKind, b []byte) []uint64 {
	for len(b) > 0 {
		var v uint64
		var n int
		switch k.wireType() {
		case protowire.Fixed32Type:
			var v32 uint32
			v32, n = protowire.ConsumeFixed32(b)
			v = uint64(v32)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		default:
			v, n = protowire.ConsumeVarint(b)
		}
		if n < 0 {
			return out
		}
		out = append(out, v)
		b = b[n:]
	}
	return out
}

// isSet reports whether field i is set as protoreflect's Range sees it.
func (m *wireMsg) isSet(i int) bool {
	fd, v := &m.d.fields[i], &m.vals[i]
	switch {
	case fd.flags&fList != 0:
		return len(v.elems) > 0 || len(v.nums) > 0
	case fd.flags&fPresence != 0:
		return v.present
	case fd.kind == kString || fd.kind == kBytes:
		return len(v.b) > 0
	}
	return v.n != 0
}

// val returns field num's value; it panics for a number the descriptor
// does not have (a bug in the decoder, caught by its tests).
func (m *wireMsg) val(num protowire.Number) *wireVal {
	i := m.d.find(num)
	if i < 0 {
		panic(fmt.Sprintf("%s has no field %d", m.d.name, num))
	}
	return &m.vals[i]
}

// has reports whether a message field or oneof member is present.
func (m *wireMsg) has(num protowire.Number) bool { return m.val(num).present }

// msg returns a singular message field's encoding (nil when absent).
func (m *wireMsg) msg(num protowire.Number) []byte { return m.val(num).b }

// str returns a string field's value.
func (m *wireMsg) str(num protowire.Number) string { return string(m.val(num).b) }

// u64 returns a scalar field's value.
func (m *wireMsg) u64(num protowire.Number) uint64 { return m.val(num).n }

// list returns a repeated message's or string's elements.
func (m *wireMsg) list(num protowire.Number) [][]byte { return m.val(num).elems }

// sub decodes a singular message field (empty when absent).
func (m *wireMsg) sub(num protowire.Number) wireMsg {
	i := m.d.find(num)
	return decodeWire(m.d.fields[i].msg, m.vals[i].b)
}

// mapEntries decodes a map field's entries into key and value encodings,
// a later entry replacing an earlier one of the same key, in first-seen order.
func (m *wireMsg) mapEntries(num protowire.Number) (keys []string, values [][]byte) {
	i := m.d.find(num)
	ed := m.d.fields[i].msg
	pos := map[string]int{}
	for _, e := range m.vals[i].elems {
		em := decodeWire(ed, e)
		k := mapKeyString(&em)
		if j, ok := pos[k]; ok {
			values[j] = em.vals[1].b
			continue
		}
		pos[k] = len(keys)
		keys = append(keys, k)
		values = append(values, em.vals[1].b)
	}
	return keys, values
}

// mapKeyString renders a map entry's key as protoreflect.MapKey.String does.
func mapKeyString(e *wireMsg) string {
	if e.d.fields[0].kind == kString {
		return string(e.vals[0].b)
	}
	return strconv.FormatUint(e.vals[0].n, 10) // every map of the table has string keys
}

// checkWire is checkFields over a validated encoding of wireDescs[di]: it
// names every set field rs neither honours nor knows to be cosmetic.
func checkWire(di int16, b []byte, rs fieldRules) error {
	var bad []string
	var walk func(di int16, b []byte, path string)
	walk = func(di int16, b []byte, path string) {
		m := decodeWire(di, b)
		for i := range m.d.fields {
			if !m.isSet(i) {
				continue
			}
			fd := &m.d.fields[i]
			p := fd.name
			if path != "" {
				p = path + "." + p
			}
			switch rs[protoreflect.FullName(m.d.name+"."+fd.name)] {
			case cosmetic, parsedApart:
				continue
			case honoured:
			default:
				bad = append(bad, p)
				continue
			}
			switch {
			case fd.flags&fMap != 0:
				vd := wireDescs[fd.msg].fields[1]
				if vd.kind != kMessage {
					continue
				}
				keys, values := m.mapEntries(fd.num)
				for j, k := range keys {
					walk(vd.msg, values[j], p+"["+k+"]")
				}
			case fd.flags&fList != 0:
				if fd.kind == kMessage {
					for j, e := range m.vals[i].elems {
						walk(fd.msg, e, p+"["+strconv.Itoa(j)+"]")
					}
				}
			case fd.kind == kMessage && !strings.HasPrefix(wireDescs[fd.msg].name, "google.protobuf."):
				walk(fd.msg, m.vals[i].b, p)
			}
		}
	}
	walk(di, b, "")
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("not supported by mast-proxy: %s", strings.Join(bad, ", "))
}

// subs decodes a repeated message field's elements.
func (m *wireMsg) subs(num protowire.Number) []wireMsg {
	i := m.d.find(num)
	if len(m.vals[i].elems) == 0 {
		return nil
	}
	out := make([]wireMsg, len(m.vals[i].elems))
	for j, e := range m.vals[i].elems {
		out[j] = decodeWire(m.d.fields[i].msg, e)
	}
	return out
}
