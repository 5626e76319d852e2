package xdsparse

import (
	"errors"
	"fmt"
	"slices"
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

// wireMsg is one decoded message: a value for each field present in its
// encoding, in the descriptor's order; a list has a value per element, in
// wire order. A message field's value decodes once, when first read, and
// is kept, so that the field check and the parse share one decode. Its
// bytes must have been validated (validateWire).
type wireMsg struct {
	d    *msgDesc
	vals []wireVal
}

type wireVal struct {
	i   int32    // the field's index in d.fields
	n   uint64   // a scalar's (last) value
	b   []byte   // a string's or bytes' (last) value; a singular message's encodings, concatenated
	sub *wireMsg // b decoded (a message), once read
}

// decodeWire decodes one level of a validated message of type wireDescs[di].
func decodeWire(di int16, b []byte) *wireMsg {
	d := &wireDescs[di]
	m := &wireMsg{d: d}
	if len(d.fields) > 1 {
		// Size vals once: count the known fields.
		n := 0
		eachField(b, func(f wireField) error {
			if d.find(f.num) >= 0 {
				n++
			}
			return nil
		})
		m.vals = make([]wireVal, 0, n)
	}
	eachField(b, func(f wireField) error {
		i := d.find(f.num)
		if i < 0 {
			return nil
		}
		fd := &d.fields[i]
		list := fd.flags&fList != 0
		if f.typ != fd.kind.wireType() {
			if list && f.typ == protowire.BytesType && fd.kind.scalar() {
				for _, n := range appendPacked(nil, fd.kind, f.b) {
					m.slot(i, true).n = n
				}
			}
			return nil
		}
		if fd.oneof != 0 {
			m.clearOneof(fd.oneof, i)
		}
		v := m.slot(i, list)
		switch {
		case fd.kind.scalar():
			v.n = f.v
		case fd.kind == kMessage && !list:
			v.b = concat(v.b, f.b)
		default:
			v.b = f.b
		}
		return nil
	})
	return m
}

// slot returns field i's value, adding it in order when absent; a list
// (add) gets a new value after its others. Fields usually come in order,
// so the search starts from the end.
func (m *wireMsg) slot(i int, add bool) *wireVal {
	j := len(m.vals)
	for j > 0 && int(m.vals[j-1].i) > i {
		j--
	}
	if !add && j > 0 && int(m.vals[j-1].i) == i {
		return &m.vals[j-1]
	}
	m.vals = slices.Insert(m.vals, j, wireVal{i: int32(i)})
	return &m.vals[j]
}

// clearOneof drops the members of oneof o but field i.
func (m *wireMsg) clearOneof(o uint8, i int) {
	m.vals = slices.DeleteFunc(m.vals, func(v wireVal) bool { return int(v.i) != i && m.d.fields[v.i].oneof == o })
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

// isSet reports whether a field, given its values (a run of vals), is
// set as protoreflect's Range sees it.
func (m *wireMsg) isSet(run []wireVal) bool {
	fd, v := &m.d.fields[run[0].i], &run[len(run)-1]
	switch {
	case fd.flags&(fList|fPresence) != 0:
		return true
	case fd.kind == kString || fd.kind == kBytes:
		return len(v.b) > 0
	}
	return v.n != 0
}

// run returns the values of field index i: a list's elements, or one.
func (m *wireMsg) run(i int) []wireVal {
	j := 0
	for j < len(m.vals) && int(m.vals[j].i) < i {
		j++
	}
	k := j
	for k < len(m.vals) && int(m.vals[k].i) == i {
		k++
	}
	return m.vals[j:k]
}

// field returns field num's values; it panics for a number the descriptor
// does not have (a bug in the decoder, caught by its tests).
func (m *wireMsg) field(num protowire.Number) []wireVal {
	i := m.d.find(num)
	if i < 0 {
		panic(fmt.Sprintf("%s has no field %d", m.d.name, num))
	}
	return m.run(i)
}

// val returns a singular field's value, nil when absent.
func (m *wireMsg) val(num protowire.Number) *wireVal {
	if r := m.field(num); len(r) > 0 {
		return &r[len(r)-1]
	}
	return nil
}

// has reports whether a message field or oneof member is present.
func (m *wireMsg) has(num protowire.Number) bool { return m.val(num) != nil }

// msg returns a singular message field's encoding (nil when absent).
func (m *wireMsg) msg(num protowire.Number) []byte {
	if v := m.val(num); v != nil {
		return v.b
	}
	return nil
}

// str returns a string field's value.
func (m *wireMsg) str(num protowire.Number) string { return string(m.msg(num)) }

// u64 returns a scalar field's value.
func (m *wireMsg) u64(num protowire.Number) uint64 {
	if v := m.val(num); v != nil {
		return v.n
	}
	return 0
}

// sub returns a singular message field, decoded (empty when absent).
func (m *wireMsg) sub(num protowire.Number) *wireMsg {
	v := m.val(num)
	if v == nil {
		return &wireMsg{d: &wireDescs[m.d.fields[m.d.find(num)].msg]}
	}
	return m.subOf(v)
}

// subOf returns message value v, decoded once.
func (m *wireMsg) subOf(v *wireVal) *wireMsg {
	if v.sub == nil {
		v.sub = decodeWire(m.d.fields[v.i].msg, v.b)
	}
	return v.sub
}

// subs returns a repeated message field's elements, decoded once.
func (m *wireMsg) subs(num protowire.Number) []*wireMsg {
	return m.subsOf(m.field(num))
}

func (m *wireMsg) subsOf(run []wireVal) []*wireMsg {
	if len(run) == 0 {
		return nil
	}
	out := make([]*wireMsg, len(run))
	for j := range run {
		out[j] = m.subOf(&run[j])
	}
	return out
}

// mapEntries returns a map field's keys and value encodings, a later entry
// replacing an earlier one of the same key, in first-seen order.
func (m *wireMsg) mapEntries(num protowire.Number) (keys []string, values [][]byte) {
	return m.entriesOf(m.field(num))
}

func (m *wireMsg) entriesOf(run []wireVal) (keys []string, values [][]byte) {
	for j := range run {
		e := m.subOf(&run[j])
		k := mapKeyString(e)
		var value []byte
		if ev := e.val(2); ev != nil {
			value = ev.b
		}
		if x := slices.Index(keys, k); x >= 0 {
			values[x] = value
			continue
		}
		keys = append(keys, k)
		values = append(values, value)
	}
	return keys, values
}

// mapValue returns map field num's value for key, decoded (a message), nil
// when absent.
func (m *wireMsg) mapValue(num protowire.Number, key string) *wireMsg {
	keys, values := m.mapEntries(num)
	for i, k := range keys {
		if k == key {
			return decodeWire(wireDescs[m.d.fields[m.d.find(num)].msg].fields[1].msg, values[i])
		}
	}
	return nil
}

// mapKeyString renders a map entry's key as protoreflect.MapKey.String does.
func mapKeyString(e *wireMsg) string {
	v := e.val(1)
	if v == nil {
		return ""
	}
	if e.d.fields[0].kind == kString {
		return string(v.b)
	}
	return strconv.FormatUint(v.n, 10) // every map of the table has string keys
}

// checkWire is checkFields over a decoded message: it names every set
// field rs neither honours nor knows to be cosmetic. The messages it
// decodes stay in m for the parse.
func checkWire(m *wireMsg, rs fieldRules) error {
	var bad []string
	var key []byte
	var walk func(m *wireMsg, path string)
	walk = func(m *wireMsg, path string) {
		for k := 0; k < len(m.vals); {
			run := m.run(int(m.vals[k].i))
			k += len(run)
			if !m.isSet(run) {
				continue
			}
			fd := &m.d.fields[run[0].i]
			key = append(append(append(key[:0], m.d.name...), '.'), fd.name...)
			sup := rs[protoreflect.FullName(key)]
			if sup == cosmetic || sup == parsedApart {
				continue
			}
			p := fd.name
			if path != "" {
				p = path + "." + p
			}
			if sup != honoured {
				bad = append(bad, p)
				continue
			}
			switch {
			case fd.flags&fMap != 0:
				vd := wireDescs[fd.msg].fields[1]
				if vd.kind != kMessage {
					continue
				}
				keys, values := m.entriesOf(run)
				for j, k := range keys {
					walk(decodeWire(vd.msg, values[j]), p+"["+k+"]")
				}
			case fd.flags&fList != 0:
				if fd.kind == kMessage {
					for j := range run {
						walk(m.subOf(&run[j]), p+"["+strconv.Itoa(j)+"]")
					}
				}
			case fd.kind == kMessage && !strings.HasPrefix(wireDescs[fd.msg].name, "google.protobuf."):
				walk(m.subOf(&run[0]), p)
			}
		}
	}
	walk(m, "")
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("not supported by mast-proxy: %s", strings.Join(bad, ", "))
}
