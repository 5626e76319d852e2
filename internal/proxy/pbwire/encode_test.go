package pbwire

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestEncNested: a message field's length is written before its contents
// whatever its size (one- and two-byte lengths), zero scalars are left out
// unless asked for, and a string that is not UTF-8 fails the encoding.
func TestEncNested(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 300, 20000} {
		e := &Enc{}
		m := e.Begin(3)
		e.String(1, "s", strings.Repeat("x", n))
		e.Varint(2, 0)
		e.VarintAlways(4, 0)
		e.End(m)
		e.Bool(5, true)
		num, typ, l := protowire.ConsumeTag(e.B)
		if num != 3 || typ != protowire.BytesType {
			t.Fatalf("n=%d: tag %d %d", n, num, typ)
		}
		inner, l2 := protowire.ConsumeBytes(e.B[l:])
		if l2 < 0 {
			t.Fatalf("n=%d: bad length", n)
		}
		want := []byte{}
		if n > 0 {
			want = protowire.AppendTag(want, 1, protowire.BytesType)
			want = protowire.AppendString(want, strings.Repeat("x", n))
		}
		want = protowire.AppendTag(want, 4, protowire.VarintType)
		want = protowire.AppendVarint(want, 0)
		if string(inner) != string(want) {
			t.Fatalf("n=%d: contents %x, want %x", n, inner, want)
		}
		if rest := e.B[l+l2:]; string(rest) != "\x28\x01" {
			t.Fatalf("n=%d: after the message %x", n, rest)
		}
		if e.Err() != nil {
			t.Fatal(e.Err())
		}
	}
	e := &Enc{}
	e.String(1, "ok", "é")
	e.MapEntry(2, "labels", "k", "\xff")
	var u *ErrUTF8
	if err := e.Err(); !errors.As(err, &u) || u.Field != "labels" {
		t.Fatalf("Err = %v, want the labels field named", err)
	}
}
