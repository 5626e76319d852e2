// Package pbwire decodes protobuf messages from their wire bytes with a small
// table of field numbers, names and kinds instead of generated Go types, so
// that mast-proxy does not link (and initialise) Envoy's generated packages
// for the filter configurations it reads.
//
// A Table lists message types; it is generated from the real descriptors by
// pbwire/pbwiregen in a test of the package that uses it, and that test
// fails when the table and the descriptors drift apart. Decode follows
// protobuf-go's Unmarshal: the last value of a singular field wins, a
// singular message field's occurrences merge, setting a oneof member clears
// the others, a field whose wire type does not match its kind is unknown,
// repeated scalars may be packed, and proto3 strings must be UTF-8.
package pbwire

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Kind is how a field is encoded.
type Kind uint8

// Field kinds.
const (
	Varint  Kind = iota // bool, enum, int32/64, uint32/64
	Fixed32             // fixed32, sfixed32, float
	Fixed64             // fixed64, sfixed64, double
	Bytes
	String // bytes that must be UTF-8
	Message
)

func (k Kind) wireType() protowire.Type {
	switch k {
	case Varint:
		return protowire.VarintType
	case Fixed32:
		return protowire.Fixed32Type
	case Fixed64:
		return protowire.Fixed64Type
	}
	return protowire.BytesType
}

func (k Kind) scalar() bool { return k <= Fixed64 }

// Field describes one field of a message type.
type Field struct {
	Num  protowire.Number
	Name string
	Kind Kind
	// List marks a repeated (or map) field.
	List bool
	// Presence marks a singular field whose presence is tracked (a
	// message, a oneof member, proto3 optional): it counts as set even
	// when its value is the zero value.
	Presence bool
	// Oneof is 1 + the index of the field's oneof in its message, 0 when
	// it is in none.
	Oneof uint8
	// Msg is the index in the table of a message field's type.
	Msg int
}

// Desc describes one message type.
type Desc struct {
	Name   string // full name, "envoy.type.matcher.v3.StringMatcher"
	Fields []Field
}

func (d *Desc) find(num protowire.Number) int {
	for i := range d.Fields {
		if d.Fields[i].Num == num {
			return i
		}
	}
	return -1
}

// Table is a set of message types that refer to each other by index.
type Table []Desc

// Index returns the index of the type named full, or -1.
func (t Table) Index(full string) int {
	for i := range t {
		if t[i].Name == full {
			return i
		}
	}
	return -1
}

// Msg is one decoded message: the values of the fields its encoding sets.
type Msg struct {
	t    Table
	d    int
	vals [][]Val // by field index; a singular field has at most one value
}

// Val is one field value: N holds a scalar, B a string or bytes, M a
// message.
type Val struct {
	N uint64
	B []byte
	M *Msg
}

// ErrWire says the bytes are not a protobuf encoding.
var ErrWire = errors.New("invalid wire-format data")

// Decode decodes b as the message type t[d], whole (nested messages too).
func Decode(t Table, d int, b []byte) (*Msg, error) {
	return decode(t, d, b, 0)
}

const maxDepth = 100

func decode(t Table, d int, b []byte, depth int) (*Msg, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%s: exceeds maximum nesting depth", t[d].Name)
	}
	desc := &t[d]
	m := &Msg{t: t, d: d, vals: make([][]Val, len(desc.Fields))}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return nil, ErrWire
		}
		b = b[n:]
		vn := protowire.ConsumeFieldValue(num, typ, b)
		if vn < 0 {
			return nil, ErrWire
		}
		raw := b[:vn]
		b = b[vn:]
		i := desc.find(num)
		if i < 0 {
			continue
		}
		fd := &desc.Fields[i]
		if typ != fd.Kind.wireType() {
			if fd.List && fd.Kind.scalar() && typ == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(raw)
				if err := m.appendPacked(i, fd.Kind, v); err != nil {
					return nil, err
				}
			}
			continue
		}
		var v Val
		switch typ {
		case protowire.VarintType:
			v.N, _ = protowire.ConsumeVarint(raw)
		case protowire.Fixed32Type:
			x, _ := protowire.ConsumeFixed32(raw)
			v.N = uint64(x)
		case protowire.Fixed64Type:
			v.N, _ = protowire.ConsumeFixed64(raw)
		default:
			v.B, _ = protowire.ConsumeBytes(raw)
			if fd.Kind == String && !utf8.Valid(v.B) {
				return nil, fmt.Errorf("%s.%s: invalid UTF-8", desc.Name, fd.Name)
			}
		}
		if fd.Kind == Message {
			// proto.Unmarshal parses every occurrence of a message
			// field, even one a later oneof member or occurrence
			// replaces or merges with.
			sub, err := decode(t, fd.Msg, v.B, depth+1)
			if err != nil {
				return nil, err
			}
			v.M = sub
		}
		if fd.Oneof != 0 {
			for j := range desc.Fields {
				if j != i && desc.Fields[j].Oneof == fd.Oneof {
					m.vals[j] = nil
				}
			}
		}
		switch {
		case fd.List:
			m.vals[i] = append(m.vals[i], v)
		case fd.Kind == Message && len(m.vals[i]) == 1:
			// A singular message's occurrences merge.
			m.vals[i][0].M.merge(v.M)
		default:
			m.vals[i] = []Val{v}
		}
	}
	return m, nil
}

// merge merges src into m as proto.Merge does: lists append, scalars
// replace, singular messages merge, and a oneof member set in src clears
// m's other members.
func (m *Msg) merge(src *Msg) {
	fields := m.t[m.d].Fields
	for i, vs := range src.vals {
		if len(vs) == 0 {
			continue
		}
		fd := &fields[i]
		if fd.Oneof != 0 {
			for j := range fields {
				if j != i && fields[j].Oneof == fd.Oneof {
					m.vals[j] = nil
				}
			}
		}
		switch {
		case fd.List:
			m.vals[i] = append(m.vals[i], vs...)
		case fd.Kind == Message && len(m.vals[i]) == 1:
			m.vals[i][0].M.merge(vs[0].M)
		default:
			m.vals[i] = []Val{vs[0]}
		}
	}
}

func (m *Msg) appendPacked(i int, k Kind, b []byte) error {
	for len(b) > 0 {
		var v uint64
		var n int
		switch k {
		case Fixed32:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case Fixed64:
			v, n = protowire.ConsumeFixed64(b)
		default:
			v, n = protowire.ConsumeVarint(b)
		}
		if n < 0 {
			return ErrWire
		}
		m.vals[i] = append(m.vals[i], Val{N: v})
		b = b[n:]
	}
	return nil
}

// Type returns the message's full type name.
func (m *Msg) Type() string { return m.t[m.d].Name }

// field returns a field's values; it panics on a number the type does not
// have (a bug in the caller, caught by its tests).
func (m *Msg) field(num protowire.Number) []Val {
	if m == nil {
		return nil
	}
	i := m.t[m.d].find(num)
	if i < 0 {
		panic(fmt.Sprintf("pbwire: %s has no field %d", m.t[m.d].Name, num))
	}
	return m.vals[i]
}

func (m *Msg) last(num protowire.Number) (Val, bool) {
	vs := m.field(num)
	if len(vs) == 0 {
		return Val{}, false
	}
	return vs[len(vs)-1], true
}

// Has reports whether a field has a value on the wire (a message, a oneof
// member, an optional scalar: present; a list: non-empty).
func (m *Msg) Has(num protowire.Number) bool { return len(m.field(num)) > 0 }

// Str returns a string field's value.
func (m *Msg) Str(num protowire.Number) string {
	v, _ := m.last(num)
	return string(v.B)
}

// Bytes returns a bytes field's value.
func (m *Msg) Bytes(num protowire.Number) []byte {
	v, _ := m.last(num)
	return v.B
}

// U64 returns a varint or fixed field's value.
func (m *Msg) U64(num protowire.Number) uint64 {
	v, _ := m.last(num)
	return v.N
}

// I64 returns an int64 (or int32, enum) field's value.
func (m *Msg) I64(num protowire.Number) int64 { return int64(m.U64(num)) }

// I32 returns an int32 or enum field's value.
func (m *Msg) I32(num protowire.Number) int32 { return int32(m.U64(num)) }

// U32 returns a uint32 field's value (protobuf-go truncates a wider varint).
func (m *Msg) U32(num protowire.Number) uint32 { return uint32(m.U64(num)) }

// Bool returns a bool field's value.
func (m *Msg) Bool(num protowire.Number) bool { return m.U64(num) != 0 }

// Double returns a double field's value.
func (m *Msg) Double(num protowire.Number) float64 { return math.Float64frombits(m.U64(num)) }

// Sub returns a singular message field's value; nil when absent. A nil
// *Msg reads as an empty message.
func (m *Msg) Sub(num protowire.Number) *Msg {
	v, _ := m.last(num)
	return v.M
}

// Subs returns a repeated message field's elements.
func (m *Msg) Subs(num protowire.Number) []*Msg {
	vs := m.field(num)
	out := make([]*Msg, len(vs))
	for i := range vs {
		out[i] = vs[i].M
	}
	return out
}

// Strs returns a repeated string field's elements.
func (m *Msg) Strs(num protowire.Number) []string {
	vs := m.field(num)
	if len(vs) == 0 {
		return nil
	}
	out := make([]string, len(vs))
	for i := range vs {
		out[i] = string(vs[i].B)
	}
	return out
}

// Nums returns a repeated scalar field's elements.
func (m *Msg) Nums(num protowire.Number) []uint64 {
	vs := m.field(num)
	if len(vs) == 0 {
		return nil
	}
	out := make([]uint64, len(vs))
	for i := range vs {
		out[i] = vs[i].N
	}
	return out
}

// Map returns a string-keyed map field's entries (key field 1, value field 2) in wire
// order; a later duplicate key replaces an earlier one's value in place of
// being appended, as protobuf-go's map does.
func (m *Msg) Map(num protowire.Number) (keys []string, vals []*Msg) {
	for _, e := range m.Subs(num) {
		k := e.Str(1)
		v := e.Sub(2)
		if j := slices.Index(keys, k); j >= 0 {
			vals[j] = v
			continue
		}
		keys, vals = append(keys, k), append(vals, v)
	}
	return keys, vals
}

// Set returns the names of the fields that protoreflect's Range would
// visit: lists and maps that are non-empty, fields with presence that are
// present, other scalars that are not zero.
func (m *Msg) Set() []string {
	if m == nil {
		return nil
	}
	var out []string
	for i, fd := range m.t[m.d].Fields {
		vs := m.vals[i]
		if len(vs) == 0 {
			continue
		}
		if fd.List || fd.Presence || fd.Kind == Message {
			out = append(out, fd.Name)
			continue
		}
		v := vs[len(vs)-1]
		if fd.Kind == String || fd.Kind == Bytes {
			if len(v.B) > 0 {
				out = append(out, fd.Name)
			}
			continue
		}
		if v.N != 0 {
			out = append(out, fd.Name)
		}
	}
	return out
}

// CheckFields returns an error naming the first populated field of m (by
// name, in name order, prefixed by path) that is not in honoured; it is
// filter.CheckFields over the wire.
func (m *Msg) CheckFields(path string, honoured ...string) error {
	var bad []string
	for _, name := range m.Set() {
		if !slices.Contains(honoured, name) {
			bad = append(bad, name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%s%s: not supported", path, bad[0])
}

// Oneof returns which of the given members of one oneof is set (its field
// number), 0 when none is.
func (m *Msg) Oneof(members ...protowire.Number) protowire.Number {
	for _, n := range members {
		if m.Has(n) {
			return n
		}
	}
	return 0
}

// Duration reads a google.protobuf.Duration as durationpb's AsDuration
// does (saturating on overflow); nil reads as zero.
func Duration(m *Msg) time.Duration {
	secs, nanos := m.I64(1), m.I32(2)
	d := time.Duration(secs) * time.Second
	overflow := d/time.Second != time.Duration(secs)
	d += time.Duration(nanos)
	overflow = overflow || (secs < 0 && nanos < 0 && d > 0)
	overflow = overflow || (secs > 0 && nanos > 0 && d < 0)
	if overflow {
		switch {
		case secs < 0:
			return time.Duration(math.MinInt64)
		case secs > 0:
			return time.Duration(math.MaxInt64)
		}
	}
	return d
}
