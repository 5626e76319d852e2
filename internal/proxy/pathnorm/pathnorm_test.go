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
		{"/a\\b/..\\c", "/a/c"},
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

func TestOptions(t *testing.T) {
	none := Options{}
	merge := Options{NormalizePath: true, MergeSlashes: true}
	decode := Options{NormalizePath: true, MergeSlashes: true, EscapedSlashes: UnescapeAndForward}
	for _, tc := range []struct {
		o       Options
		in, out string
		err     error
	}{
		{none, "/a/../b//c%2e", "/a/../b//c%2e", nil},
		{Base, "//admin", "//admin", nil},
		{Base, "/a%2Fb", "/a%2Fb", nil},
		{merge, "//admin//x", "/admin/x", nil},
		{merge, "/public//..//admin", "/public/admin", nil},
		{decode, "/public%2F..%2Fadmin", "/admin", nil},
		{decode, "/admin%5Cx", "/admin/x", nil},
		{Options{NormalizePath: true, EscapedSlashes: RejectEscapedSlashes}, "/a%2fb", "", ErrEscapedSlash},
	} {
		out, _, err := tc.o.Normalize(tc.in)
		if out != tc.out || err != tc.err {
			t.Errorf("%+v.Normalize(%q) = %q, %v; want %q, %v", tc.o, tc.in, out, err, tc.out, tc.err)
		}
	}
	for in, want := range map[string]string{"/admin": "/admin", "/%61dmin%2F..%2Fadmin;x=1/": "/admin/", "/a//b\\c;p/%252e%252e/d": "/a/b/d"} {
		if got := Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
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
		if !strings.HasPrefix(p, "/") {
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
