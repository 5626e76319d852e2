// Package pbwire decodes protobuf messages from their wire bytes with a small
// table of field numbers, names and kinds instead of generated Go types, so
// that mast-proxy does not link (and initialise) Envoy's generated packages
// for the xDS resources and filter configurations it reads.
//
// A Table lists message types (and, in a full table, enums); it is
// generated from the real descriptors by pbwire/pbwiregen in a test of the
// package that uses it, and that test fails when the table and the
// descriptors drift apart. Decoding follows protobuf-go's Unmarshal: the
// last value of a singular field wins, a singular message field's
// occurrences merge, setting a oneof member clears the others, a field
// whose wire type does not match its kind is unknown, repeated scalars may
// be packed, proto3 strings must be UTF-8, and nesting is limited as
// proto.Unmarshal limits it.
//
// A message is checked whole (Validate) once and decoded one level at a
// time: a message field is decoded when first read and kept, and string,
// bytes and message values are slices of the input, never copies (a
// singular message sent in pieces is the one exception: its pieces are
// joined).
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
	Varint  Kind = iota // bool, enum, int32/64, uint32/64, sint32/64
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

// Scalar reports whether k is a number (packable).
func (k Kind) Scalar() bool { return k <= Fixed64 }

// Scalar is a scalar field's declared type, which a full table records
// (pbwiregen.FullTable) for rendering values; ScalarNone in a lean table.
type Scalar uint8

// Scalar types.
const (
	ScalarNone Scalar = iota
	ScalarBool
	ScalarEnum // the field's Msg is the enum's index in the table
	ScalarInt32
	ScalarInt64
	ScalarUint32
	ScalarUint64
	ScalarSint32
	ScalarSint64
	ScalarFixed32
	ScalarSfixed32
	ScalarFloat
	ScalarFixed64
	ScalarSfixed64
	ScalarDouble
)

// Field describes one field of a message type, or one value of an enum
// (Num its number, Name its name).
type Field struct {
	Name string
	Num  protowire.Number
	// Msg is the index in the table of a message field's type (of an
	// enum field's enum, in a full table).
	Msg  int32
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
	// Map marks a map field (its elements are entries: key 1, value 2);
	// full tables only.
	Map bool
	// Scalar is a scalar field's declared type; full tables only.
	Scalar Scalar
}

// Desc describes one message type, or (Enum) one enum type of a full
// table.
type Desc struct {
	Name   string // full name, "envoy.type.matcher.v3.StringMatcher"
	Enum   bool
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

// EnumName returns the name of value n of the enum at index e (a full
// table's), "" when the enum has no such value.
func (t Table) EnumName(e int32, n int32) string {
	for _, v := range t[e].Fields {
		if int32(v.Num) == n {
			return v.Name
		}
	}
	return ""
}

// Msg is one decoded message: the values of the fields its encoding sets,
// in the order of its type's fields (a list's in wire order). A nil *Msg
// reads as an empty message. A Msg decodes its message fields when they
// are first read, so it is not safe for concurrent use.
type Msg struct {
	t    *Table
	vals []Val
	d    int32
}

// Val is one field value: N holds a scalar, B a string's, bytes' or
// message's encoding.
type Val struct {
	N uint64
	B []byte
	m *Msg // B decoded, once read
	i int32
}

// Errors of Validate: the bytes are not a protobuf encoding, a string is
// not UTF-8 (wrapped with the field's name), the nesting is too deep
// (wrapped with the type's).
var (
	ErrWire        = errors.New("invalid wire-format data")
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	ErrDepth       = errors.New("exceeds maximum nesting depth")
)

// maxDepth is protobuf-go's default nesting limit.
const maxDepth = 10000

// Decode checks b as the message type t[d], whole, and decodes it.
func Decode(t Table, d int, b []byte) (*Msg, error) { return (&t).Decode(d, b) }

// Decode checks b as the message type t[d], whole, and decodes it.
func (t *Table) Decode(d int, b []byte) (*Msg, error) {
	if err := t.Validate(d, b); err != nil {
		return nil, err
	}
	return t.DecodeValid(d, b), nil
}

// Validate checks b as the message type t[d] and every message inside it
// as proto.Unmarshal does: wire format, field numbers, UTF-8 of strings,
// nesting depth (a known field sent with another wire type is an unknown
// field, skipped).
func (t *Table) Validate(d int, b []byte) error { return t.validate(d, b, 0) }

func (t *Table) validate(d int, b []byte, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%s: %w", (*t)[d].Name, ErrDepth)
	}
	desc := &(*t)[d]
	for len(b) > 0 {
		num, typ, raw, rest, err := next(b)
		if err != nil {
			return err
		}
		b = rest
		i := desc.find(num)
		if i < 0 {
			continue
		}
		fd := &desc.Fields[i]
		if typ != fd.Kind.wireType() {
			if fd.List && fd.Kind.Scalar() && typ == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(raw)
				if eachPacked(fd.Kind, v, func(uint64) {}) != nil {
					return ErrWire
				}
			}
			continue
		}
		switch fd.Kind {
		case String:
			v, _ := protowire.ConsumeBytes(raw)
			if !utf8.Valid(v) {
				return fmt.Errorf("%s.%s: %w", desc.Name, fd.Name, ErrInvalidUTF8)
			}
		case Message:
			v, _ := protowire.ConsumeBytes(raw)
			if err := t.validate(int(fd.Msg), v, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// next splits the first field off b: its number, wire type, encoded value
// and the rest.
func next(b []byte) (protowire.Number, protowire.Type, []byte, []byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num > protowire.MaxValidNumber {
		return 0, 0, nil, nil, ErrWire
	}
	b = b[n:]
	vn := protowire.ConsumeFieldValue(num, typ, b)
	if vn < 0 {
		return 0, 0, nil, nil, ErrWire
	}
	return num, typ, b[:vn], b[vn:], nil
}

// eachPacked calls fn with every element of a packed list of scalars.
func eachPacked(k Kind, b []byte, fn func(uint64)) error {
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
		fn(v)
		b = b[n:]
	}
	return nil
}

// DecodeValid decodes one level of b, which Validate accepted (as the type
// t[d], or as part of a message that holds it).
func (t *Table) DecodeValid(d int, b []byte) *Msg {
	desc := &(*t)[d]
	m := &Msg{t: t, d: int32(d)}
	// Size vals once: count the known fields.
	n := 0
	for rest := b; len(rest) > 0; {
		num, _, _, r, err := next(rest)
		if err != nil {
			break
		}
		rest = r
		if desc.find(num) >= 0 {
			n++
		}
	}
	if n == 0 {
		return m
	}
	m.vals = make([]Val, 0, n)
	// Values are appended in wire order, then put in field order with one
	// stable sort when they came out of it (interleaved lists, fields out
	// of number order): never an insertion per value.
	sorted, last := true, int32(-1)
	// A oneof keeps the values of its last member from the last time the
	// member changed: cut[o] is where that run starts, member[o] which
	// field it is.
	var cutBuf, memberBuf [8]int32
	cut, member := cutBuf[:0], memberBuf[:0]
	switched := false
	for len(b) > 0 {
		num, typ, raw, rest, err := next(b)
		if err != nil {
			break
		}
		b = rest
		i := desc.find(num)
		if i < 0 {
			continue
		}
		fd := &desc.Fields[i]
		if typ != fd.Kind.wireType() {
			if fd.List && fd.Kind.Scalar() && typ == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(raw)
				eachPacked(fd.Kind, v, func(x uint64) { m.vals = append(m.vals, Val{N: x, i: int32(i)}) })
				sorted = sorted && int32(i) >= last
				last = int32(i)
			}
			continue
		}
		if o := int(fd.Oneof); o != 0 {
			for len(cut) < o {
				cut, member = append(cut, 0), append(member, -1)
			}
			if member[o-1] != int32(i) {
				switched = switched || member[o-1] >= 0
				cut[o-1], member[o-1] = int32(len(m.vals)), int32(i)
			}
		}
		v := Val{i: int32(i)}
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
		}
		m.vals = append(m.vals, v)
		sorted = sorted && int32(i) >= last
		last = int32(i)
	}
	if switched {
		// In wire order still: positions are those cut recorded.
		j := 0
		for k, v := range m.vals {
			if o := desc.Fields[v.i].Oneof; o != 0 && (v.i != member[o-1] || int32(k) < cut[o-1]) {
				continue
			}
			m.vals[j] = v
			j++
		}
		clear(m.vals[j:])
		m.vals = m.vals[:j]
	}
	if !sorted {
		slices.SortStableFunc(m.vals, func(a, b Val) int { return int(a.i) - int(b.i) })
	}
	m.mergeSingular()
	return m
}

// mergeSingular leaves one value per singular field: the last scalar,
// string or bytes; a message's pieces joined (proto.Unmarshal merges
// them).
func (m *Msg) mergeSingular() {
	fields := (*m.t)[m.d].Fields
	j := 0
	for k := 0; k < len(m.vals); {
		i := m.vals[k].i
		e := k + 1
		for e < len(m.vals) && m.vals[e].i == i {
			e++
		}
		fd := &fields[i]
		switch {
		case fd.List || e-k == 1:
			j += copy(m.vals[j:], m.vals[k:e])
		case fd.Kind == Message:
			size := 0
			for _, v := range m.vals[k:e] {
				size += len(v.B)
			}
			joined := make([]byte, 0, size)
			for _, v := range m.vals[k:e] {
				joined = append(joined, v.B...)
			}
			m.vals[j] = Val{B: joined, i: i}
			j++
		default:
			m.vals[j] = m.vals[e-1]
			j++
		}
		k = e
	}
	clear(m.vals[j:])
	m.vals = m.vals[:j]
}

// Type returns the message's full type name.
func (m *Msg) Type() string { return (*m.t)[m.d].Name }

// Desc returns the message's type.
func (m *Msg) Desc() *Desc { return &(*m.t)[m.d] }

// Table returns the table the message's type is in.
func (m *Msg) Table() *Table { return m.t }

// Vals returns a field's values: a list's elements, or a singular field's
// one value (none when absent). It panics on a number the type does not
// have (a bug in the caller, caught by its tests).
func (m *Msg) Vals(num protowire.Number) []Val {
	if m == nil {
		return nil
	}
	i := (*m.t)[m.d].find(num)
	if i < 0 {
		panic(fmt.Sprintf("pbwire: %s has no field %d", (*m.t)[m.d].Name, num))
	}
	return m.run(int32(i))
}

// run returns the values of field index i.
func (m *Msg) run(i int32) []Val {
	j := 0
	for j < len(m.vals) && m.vals[j].i < i {
		j++
	}
	k := j
	for k < len(m.vals) && m.vals[k].i == i {
		k++
	}
	return m.vals[j:k]
}

// All yields every field the encoding sets, in the type's field order,
// with its values (see Vals).
func (m *Msg) All(yield func(*Field, []Val) bool) {
	if m == nil {
		return
	}
	fields := (*m.t)[m.d].Fields
	for k := 0; k < len(m.vals); {
		i := m.vals[k].i
		e := k + 1
		for e < len(m.vals) && m.vals[e].i == i {
			e++
		}
		if !yield(&fields[i], m.vals[k:e:e]) {
			return
		}
		k = e
	}
}

// IsSet reports whether field f with values vs (from All) is set as
// protoreflect's Range sees it: a list or map that is non-empty, a field
// with presence that is present, another scalar that is not zero.
func IsSet(f *Field, vs []Val) bool {
	if len(vs) == 0 {
		return false
	}
	v := &vs[len(vs)-1]
	switch {
	case f.List || f.Presence || f.Kind == Message:
		return true
	case f.Kind == String || f.Kind == Bytes:
		return len(v.B) > 0
	}
	return v.N != 0
}

// SubOf returns message value v (one of m's values), decoded once.
func (m *Msg) SubOf(v *Val) *Msg {
	if v.m == nil {
		v.m = m.t.DecodeValid(int((*m.t)[m.d].Fields[v.i].Msg), v.B)
	}
	return v.m
}

func (m *Msg) last(num protowire.Number) *Val {
	vs := m.Vals(num)
	if len(vs) == 0 {
		return nil
	}
	return &vs[len(vs)-1]
}

// Has reports whether a field has a value on the wire (a message, a oneof
// member, an optional scalar: present; a list: non-empty).
func (m *Msg) Has(num protowire.Number) bool { return len(m.Vals(num)) > 0 }

// Str returns a string field's value.
func (m *Msg) Str(num protowire.Number) string { return string(m.Bytes(num)) }

// Bytes returns a bytes or string field's value, or a message field's
// encoding (a slice of the input).
func (m *Msg) Bytes(num protowire.Number) []byte {
	if v := m.last(num); v != nil {
		return v.B
	}
	return nil
}

// U64 returns a varint or fixed field's value.
func (m *Msg) U64(num protowire.Number) uint64 {
	if v := m.last(num); v != nil {
		return v.N
	}
	return 0
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
	if v := m.last(num); v != nil {
		return m.SubOf(v)
	}
	return nil
}

// Subs returns a repeated message field's elements.
func (m *Msg) Subs(num protowire.Number) []*Msg {
	vs := m.Vals(num)
	if len(vs) == 0 {
		return nil
	}
	out := make([]*Msg, len(vs))
	for i := range vs {
		out[i] = m.SubOf(&vs[i])
	}
	return out
}

// Strs returns a repeated string field's elements.
func (m *Msg) Strs(num protowire.Number) []string {
	vs := m.Vals(num)
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
	vs := m.Vals(num)
	if len(vs) == 0 {
		return nil
	}
	out := make([]uint64, len(vs))
	for i := range vs {
		out[i] = vs[i].N
	}
	return out
}

// Map returns a string-keyed map field's entries (key field 1, value field
// 2) in wire order; a later duplicate key replaces an earlier one's value
// in place of being appended, as protobuf-go's map does.
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

// MapEntries is Map for the entries vs of a map field of m (from All or
// Vals), giving each key's last entry, decoded.
func (m *Msg) MapEntries(vs []Val) (keys []string, entries []*Msg) {
	for j := range vs {
		e := m.SubOf(&vs[j])
		k := e.Str(1)
		if x := slices.Index(keys, k); x >= 0 {
			entries[x] = e
			continue
		}
		keys, entries = append(keys, k), append(entries, e)
	}
	return keys, entries
}

// Set returns the names of the fields that protoreflect's Range would
// visit (IsSet).
func (m *Msg) Set() []string {
	var out []string
	for f, vs := range m.All {
		if IsSet(f, vs) {
			out = append(out, f.Name)
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
