package headers

import (
	"slices"
	"testing"
)

// TestDel: every field of the name goes, the others keep their order; a
// name that is absent leaves the list as it was.
func TestDel(t *testing.T) {
	l := List{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}, {Name: "a", Value: "3"}, {Name: "c", Value: "4"}, {Name: "a", Value: "5"}}
	l.Del("a")
	if want := (List{{Name: "b", Value: "2"}, {Name: "c", Value: "4"}}); !slices.Equal(l, want) {
		t.Fatalf("Del(a): %v, want %v", l, want)
	}
	before := slices.Clone(l)
	l.Del("x")
	if !slices.Equal(l, before) {
		t.Fatalf("Del(x): %v, want %v", l, before)
	}
	l = List{{Name: "a"}}
	l.Del("a")
	if len(l) != 0 {
		t.Fatalf("Del of the only field: %v", l)
	}
}

func TestDelFuncAndPrefix(t *testing.T) {
	l := List{{"a", "1"}, {"x-envoy-a", "2"}, {"b", "3"}, {"x-envoy-b", "4"}}
	l.DelPrefix("x-envoy-")
	if want := (List{{"a", "1"}, {"b", "3"}}); !slices.Equal(l, want) {
		t.Fatalf("DelPrefix: %v, want %v", l, want)
	}
	l.DelFunc(func(string) bool { return false })
	if len(l) != 2 {
		t.Fatalf("DelFunc dropping nothing left %v", l)
	}
	l.DelFunc(func(n string) bool { return n == "a" })
	if want := (List{{"b", "3"}}); !slices.Equal(l, want) {
		t.Fatalf("DelFunc: %v, want %v", l, want)
	}
}
