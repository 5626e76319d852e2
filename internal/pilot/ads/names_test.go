package ads

import (
	"fmt"
	"slices"
	"strings"
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

// BenchmarkNameSetRemoveHalf unsubscribes half of 20,000 names in one
// request: linear now (one compaction), quadratic before (one shift per
// name). go test -run '^$' -bench NameSetRemove ./internal/pilot/ads
func BenchmarkNameSetRemoveHalf(b *testing.B) {
	all := make([]string, 20000)
	for i := range all {
		all[i] = fmt.Sprintf("outbound|9080||svc-%05d.default.svc.cluster.local", i)
	}
	half := all[:len(all)/2]
	for b.Loop() {
		s := newNameSet(all)
		s.remove(half)
		if len(s) != len(all)-len(half) {
			b.Fatalf("%d names left", len(s))
		}
	}
}

func TestNameSetRemoveMany(t *testing.T) {
	s := newNameSet([]string{"a", "b", "c", "d", "e"})
	s.remove([]string{"e", "a", "c", "x", "a"})
	if got := strings.Join(s.strings(), ","); got != "b,d" {
		t.Fatalf("after remove: %s", got)
	}
	s.remove([]string{"b", "d"})
	if len(s) != 0 {
		t.Fatalf("not empty: %v", s.strings())
	}
}
