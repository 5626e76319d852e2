package hostport

import (
	"strings"
	"testing"
)

func TestWithoutPort(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"svc", "svc"},
		{"svc:8080", "svc"},
		{"svc.ns.svc.cluster.local:80", "svc.ns.svc.cluster.local"},
		{"10.0.0.1:8080", "10.0.0.1"},
		{"10.0.0.1", "10.0.0.1"},
		{"[fd00::6]:8080", "[fd00::6]"},
		{"[fd00::6]", "[fd00::6]"},
		{"[fd00::6]:", "[fd00::6]"},
		{"svc:", "svc"},
		{"svc:http", "svc"},     // Envoy does not check the port is digits
		{"fd00::6", "fd00:"},    // unbracketed IPv6: Envoy's rule, last ':'
		{"a:1:2", "a:1"},        // last ':' only
		{"]x:9", "]x"},          // a ']' before the last ':'
		{"SVC:8080", "SVC"},     // case is the matcher's business
		{":8080", ""},           // port only
		{"[::1]]:80", "[::1]]"}, // malformed, still the last ':' after the last ']'
	} {
		if got := WithoutPort(c.in); got != c.want {
			t.Errorf("WithoutPort(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestWithoutPortDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = WithoutPort("svc.ns.svc.cluster.local:8080") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// FuzzWithoutPort holds WithoutPort to Envoy's rule written another way:
// the result is authority itself or its prefix before the last ':', and it
// is cut exactly when that ':' comes after every ']'.
func FuzzWithoutPort(f *testing.F) {
	for _, s := range []string{"svc:8080", "[fd00::6]:8080", "[fd00::6]", "fd00::6", "", ":", "]:", ":]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := WithoutPort(s)
		if !strings.HasPrefix(s, got) {
			t.Fatalf("WithoutPort(%q) = %q: not a prefix", s, got)
		}
		rest := s[len(got):]
		switch {
		case rest == "":
			if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "]") {
				t.Fatalf("WithoutPort(%q) kept the port", s)
			}
		case rest[0] != ':' || strings.ContainsAny(rest[1:], ":]"):
			t.Fatalf("WithoutPort(%q) = %q: cut %q is not the last ':' and after it", s, got, rest)
		}
	})
}
