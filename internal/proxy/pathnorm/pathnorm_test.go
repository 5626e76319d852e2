package pathnorm

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/a/b?x=/../y", "/a/b?x=/../y"},
		{"/a/./b", "/a/b"},
		{"/a/../b", "/b"},
		{"/../../etc/passwd", "/etc/passwd"},
		{"/a/b/..", "/a/"},
		{"/a/b/.", "/a/b/"},
		{"//admin", "/admin"},
		{"/public//..//admin", "/admin"},
		{"/%2e%2e/admin", "/admin"},
		{"/public/%2E%2E/admin", "/admin"},
		{"/a%2fb", "/a%2Fb"},
		{"/%7euser", "/~user"},
		{"/a..b/c", "/a..b/c"},
		{"/.hidden", "/.hidden"},
	} {
		got, err := Normalize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "a/b", "/a%zz", "/a%2", "/a#frag", "*"} {
		if _, err := Normalize(in); err == nil {
			t.Errorf("Normalize(%q) accepted", in)
		}
	}
}

func TestNormalizeNoAllocWhenNormal(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { Normalize("/reviews/0?u=1") }); n != 0 {
		t.Errorf("allocs = %v", n)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "//x//y", "/%2e%2E/a", "/a?b", "/a/b/.", "/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Normalize(in)
		if err != nil {
			return
		}
		p, _, _ := strings.Cut(out, "?")
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
			t.Fatalf("Normalize(%q) = %q: not an absolute path without empty segments", in, out)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("Normalize(%q) = %q: dot segment left", in, out)
			}
		}
		again, err := Normalize(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, out, again, err)
		}
	})
}
