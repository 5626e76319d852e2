// Package headers is the header list shared by the proxy's HTTP/1, HTTP/2,
// routing and filter code: an ordered slice of name/value pairs whose names
// are lower-case, so lookups compare bytes without allocating.
package headers

import (
	"slices"
	"strings"
)

// Field is one header field. Name is lower-case ASCII.
type Field struct {
	Name  string
	Value string
}

// List is an ordered header list. The zero value is empty and usable.
type List []Field

// Get returns the first value of name (which must be lower-case) and whether
// it was present.
func (l List) Get(name string) (string, bool) {
	for i := range l {
		if l[i].Name == name {
			return l[i].Value, true
		}
	}
	return "", false
}

// Value returns the first value of name or "".
func (l List) Value(name string) string {
	v, _ := l.Get(name)
	return v
}

// Has reports whether name is present.
func (l List) Has(name string) bool {
	_, ok := l.Get(name)
	return ok
}

// Count returns how many fields are called name.
func (l List) Count(name string) int {
	n := 0
	for i := range l {
		if l[i].Name == name {
			n++
		}
	}
	return n
}

// Add appends a field.
func (l *List) Add(name, value string) {
	*l = append(*l, Field{Name: name, Value: value})
}

// Set replaces every field called name by one field with value, keeping the
// position of the first one.
func (l *List) Set(name, value string) {
	s := *l
	for i := range s {
		if s[i].Name == name {
			s[i].Value = value
			l.delFrom(name, i+1)
			return
		}
	}
	*l = append(s, Field{Name: name, Value: value})
}

// Del removes every field called name.
func (l *List) Del(name string) {
	l.delFrom(name, 0)
}

func (l *List) delFrom(name string, from int) {
	s := *l
	i := from
	for i < len(s) && s[i].Name != name {
		i++
	}
	if i == len(s) {
		return // nothing to delete: no field is rewritten
	}
	j := i
	for i++; i < len(s); i++ {
		if s[i].Name != name {
			s[j] = s[i]
			j++
		}
	}
	clear(s[j:])
	*l = s[:j]
}

// DelPrefix removes every field whose name starts with prefix.
func (l *List) DelPrefix(prefix string) {
	l.DelFunc(func(name string) bool { return strings.HasPrefix(name, prefix) })
}

// DelFunc removes, in one pass, every field whose name drop reports; no
// field is rewritten when none is.
func (l *List) DelFunc(drop func(name string) bool) {
	*l = slices.DeleteFunc(*l, func(f Field) bool { return drop(f.Name) })
}

// Clone returns a copy with its own backing array and room for extra fields.
func (l List) Clone(extra int) List {
	c := make(List, len(l), len(l)+extra)
	copy(c, l)
	return c
}

// Lower returns s in lower case, without allocating when it already is.
func Lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return s
}

// EqualFold reports whether ASCII strings a and b are equal ignoring case.
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// HasPrefixFold reports whether s starts with prefix ignoring ASCII case.
func HasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && EqualFold(s[:len(prefix)], prefix)
}

// HasSuffixFold reports whether s ends with suffix ignoring ASCII case.
func HasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && EqualFold(s[len(s)-len(suffix):], suffix)
}

// ContainsFold reports whether sub is within s ignoring ASCII case.
func ContainsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// ValidName reports whether name is a valid lower-case field name: an RFC
// 9110 token without upper-case letters (RFC 9113 section 8.2.1).
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 0x80 || !tokenChar[c] || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// ValidToken reports whether s is a non-empty RFC 9110 token (a method).
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

// ValidValue reports whether v may be a field value that is forwarded as
// is, over HTTP/1 included: no NUL, CR, LF or other control character but
// horizontal tab, and no leading or trailing whitespace (RFC 9113 section
// 8.2.1; a CR or LF would let a value inject fields or a request line).
func ValidValue(v string) bool {
	if v == "" {
		return true
	}
	if isSpace(v[0]) || isSpace(v[len(v)-1]) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidPath reports whether p is an origin-form request target (or "*")
// that can be written into an HTTP/1 request line: visible ASCII only, no
// space, control character, fragment or non-ASCII byte.
func ValidPath(p string) bool {
	if p == "*" {
		return true
	}
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// tokenChar marks RFC 9110 tchar bytes.
var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
