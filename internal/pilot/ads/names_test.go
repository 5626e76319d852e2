package ads

import (
	"slices"
	"testing"
)

func TestNameSet(t *testing.T) {
	s := newNameSet([]string{"b", "*", "a", "b"})
	if got := s.strings(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("newNameSet = %v, want [a b]", got)
	}
	tests := []struct {
		list []string
		same bool
	}{
		{[]string{"a", "b"}, true},
		{[]string{"b", "a", "*"}, true},
		{[]string{"a", "a", "b"}, true},
		{[]string{"a", "a"}, false},
		{[]string{"a"}, false},
		{[]string{"a", "b", "c"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := s.sameAs(tt.list); got != tt.same {
			t.Errorf("sameAs(%v) = %v, want %v", tt.list, got, tt.same)
		}
	}
	if added := s.add([]string{"c", "a", "c", "*", "0"}); !slices.Equal(added, []string{"0", "c"}) {
		t.Fatalf("add returned %v, want [0 c]", added)
	}
	s.remove([]string{"a", "zz"})
	if got := s.strings(); !slices.Equal(got, []string{"0", "b", "c"}) {
		t.Fatalf("after add and remove: %v", got)
	}
	if !s.has("c") || s.has("a") {
		t.Fatal("has is wrong")
	}
	// Interned: two sets with the same name share one canonical handle.
	if other := newNameSet([]string{"c"}); other[0] != s[2] {
		t.Fatal("the same name in two sets is not the same handle")
	}
}
