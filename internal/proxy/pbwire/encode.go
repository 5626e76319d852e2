package pbwire

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Enc appends a protobuf encoding field by field, as protobuf-go's Marshal
// writes a proto3 message: a scalar at its zero value is left out (implicit
// presence), a message field is written even when empty. A string field
// that is not UTF-8 makes Err fail, as Marshal refuses one.
type Enc struct {
	B       []byte
	badUTF8 string // the first string field that was not UTF-8
}

// ErrUTF8 is the error of an encoding with a string field that is not
// UTF-8.
type ErrUTF8 struct{ Field string }

func (e *ErrUTF8) Error() string { return "string field " + e.Field + " contains invalid UTF-8" }

// Err returns an *ErrUTF8 naming the first string field that was not UTF-8.
func (e *Enc) Err() error {
	if e.badUTF8 != "" {
		return &ErrUTF8{Field: e.badUTF8}
	}
	return nil
}

// String appends a string field unless s is empty; name is the field's
// name for the error of a string that is not UTF-8.
func (e *Enc) String(num protowire.Number, name, s string) {
	if s != "" {
		e.StringAlways(num, name, s)
	}
}

// StringAlways appends a string field even when s is empty (a map entry's
// key and value, a oneof member).
func (e *Enc) StringAlways(num protowire.Number, name, s string) {
	if e.badUTF8 == "" && !utf8.ValidString(s) {
		e.badUTF8 = name
	}
	e.B = protowire.AppendTag(e.B, num, protowire.BytesType)
	e.B = protowire.AppendString(e.B, s)
}

// MapEntry appends one entry of a map<string, string> field, key and
// value always written, as protobuf-go writes them.
func (e *Enc) MapEntry(num protowire.Number, name, k, v string) {
	m := e.Begin(num)
	e.StringAlways(1, name, k)
	e.StringAlways(2, name, v)
	e.End(m)
}

// Bytes appends a bytes field unless b is empty.
func (e *Enc) Bytes(num protowire.Number, b []byte) {
	if len(b) == 0 {
		return
	}
	e.B = protowire.AppendTag(e.B, num, protowire.BytesType)
	e.B = protowire.AppendBytes(e.B, b)
}

// Varint appends a varint field (int32/64, uint32/64, enum, bool) unless v
// is zero.
func (e *Enc) Varint(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.VarintAlways(num, v)
}

// VarintAlways appends a varint field even when v is zero (a oneof member,
// an optional field).
func (e *Enc) VarintAlways(num protowire.Number, v uint64) {
	e.B = protowire.AppendTag(e.B, num, protowire.VarintType)
	e.B = protowire.AppendVarint(e.B, v)
}

// Bool appends a bool field unless it is false.
func (e *Enc) Bool(num protowire.Number, v bool) {
	if v {
		e.Varint(num, 1)
	}
}

// Fixed64 appends a fixed64 (or sfixed64, double bits) field unless v is
// zero.
func (e *Enc) Fixed64(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.B = protowire.AppendTag(e.B, num, protowire.Fixed64Type)
	e.B = protowire.AppendFixed64(e.B, v)
}

// Fixed32 appends a fixed32 (or sfixed32, float bits) field unless v is
// zero.
func (e *Enc) Fixed32(num protowire.Number, v uint32) {
	if v == 0 {
		return
	}
	e.B = protowire.AppendTag(e.B, num, protowire.Fixed32Type)
	e.B = protowire.AppendFixed32(e.B, v)
}

// Begin starts a message field; the fields appended until the matching
// End are its contents. It returns the mark End needs.
func (e *Enc) Begin(num protowire.Number) int {
	e.B = protowire.AppendTag(e.B, num, protowire.BytesType)
	return len(e.B)
}

// End closes the message field Begin started at mark: it writes the
// contents' length before them (moving them by the length's size).
func (e *Enc) End(mark int) {
	n := len(e.B) - mark
	sz := protowire.SizeVarint(uint64(n))
	var pad [binaryMaxVarint]byte
	e.B = append(e.B, pad[:sz]...)
	copy(e.B[mark+sz:], e.B[mark:mark+n])
	protowire.AppendVarint(e.B[mark:mark], uint64(n))
}

const binaryMaxVarint = 10
