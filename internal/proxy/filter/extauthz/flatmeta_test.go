package extauthz

import (
	"math"
	"reflect"
	"sort"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// TestFlatMetaValues: dynamic metadata from a CheckResponse keeps strings
// and booleans as they are and numbers as JSON writes them (it once stored
// protobuf's text form, "number_value:1.5"); lists, structs, nulls and
// numbers JSON cannot write are left out.
func TestFlatMetaValues(t *testing.T) {
	s, err := structpb.NewStruct(map[string]any{
		"s": "v", "b": true, "f": 1.5, "i": 2, "big": 1e21, "neg": -0.25,
		"list": []any{"x"}, "obj": map[string]any{"k": "v"}, "null": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Fields["nan"] = structpb.NewNumberValue(math.NaN())
	got := flatMeta(structMsg(t, s))
	sort.Slice(got, func(i, j int) bool { return got[i][0] < got[j][0] })
	want := [][2]string{{"b", "true"}, {"big", "1e+21"}, {"f", "1.5"}, {"i", "2"}, {"neg", "-0.25"}, {"s", "v"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("flatMeta = %v, want %v", got, want)
	}
}
