package xdsparse

import (
	"math/rand/v2"
	"strconv"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// sameAsGenerated checks decodeTypedStruct against proto.Unmarshal into
// cncf/xds's generated TypedStruct (the reference, test-only): both fail, or
// both succeed with the same type_url and an equal value.
func sameAsGenerated(t *testing.T, b []byte) {
	t.Helper()
	var ref xdstypev3.TypedStruct
	refErr := proto.Unmarshal(b, &ref)
	typeURL, value, err := decodeTypedStruct(b)
	switch {
	case (err == nil) != (refErr == nil):
		t.Fatalf("% x: decodeTypedStruct error %v, generated %v", b, err, refErr)
	case err != nil:
		return
	case typeURL != ref.GetTypeUrl():
		t.Fatalf("% x: type_url %q, generated %q", b, typeURL, ref.GetTypeUrl())
	case !proto.Equal(value, ref.GetValue()) && !(len(value.GetFields()) == 0 && ref.GetValue() == nil):
		t.Fatalf("% x: value %v, generated %v", b, value, ref.GetValue())
	}
}

func randomTypedStruct(r *rand.Rand) []byte {
	fields := map[string]any{}
	for i := range r.IntN(4) {
		switch r.IntN(4) {
		case 0:
			fields["s"+strconv.Itoa(i)] = "v" + strconv.Itoa(r.IntN(100))
		case 1:
			fields["n"+strconv.Itoa(i)] = float64(r.IntN(1000))
		case 2:
			fields["l"+strconv.Itoa(i)] = []any{"a", true, map[string]any{"name": "requests_total"}}
		default:
			fields["b"+strconv.Itoa(i)] = r.IntN(2) == 0
		}
	}
	v, err := structpb.NewStruct(fields)
	if err != nil {
		panic(err)
	}
	ts := &xdstypev3.TypedStruct{TypeUrl: StatsTypeURL, Value: v}
	if r.IntN(5) == 0 {
		ts.Value = nil
	}
	b, err := proto.Marshal(ts)
	if err != nil {
		panic(err)
	}
	// Wire shapes proto.Marshal never writes but a decoder must accept or
	// refuse as the generated one does: repeated fields, unknown fields,
	// other wire types, truncation and flipped bytes.
	switch r.IntN(7) {
	case 0:
		b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), "type.googleapis.com/other")
	case 1:
		more, _ := proto.Marshal(&xdstypev3.TypedStruct{Value: &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewBoolValue(true)}}})
		b = append(b, more...)
	case 2:
		b = protowire.AppendVarint(protowire.AppendTag(b, 9, protowire.VarintType), 7)
	case 3:
		b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), 7)
	case 4:
		if len(b) > 0 {
			b = b[:r.IntN(len(b))]
		}
	case 5:
		if len(b) > 0 {
			b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
		}
	}
	return b
}

func TestTypedStructMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		sameAsGenerated(t, randomTypedStruct(r))
	}
	// A type_url that is not UTF-8 fails both.
	sameAsGenerated(t, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{0xff}))
}

func FuzzTypedStruct(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(randomTypedStruct(r))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameAsGenerated(t, b) })
}
