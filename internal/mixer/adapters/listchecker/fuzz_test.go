package listchecker

import (
	"net"
	"testing"
)

// FuzzParseList: a list fetched from providerUrl is another server's
// answer; any bytes yield a list or an error, never a panic, and a parsed
// list answers lookups.
func FuzzParseList(f *testing.F) {
	for _, seed := range []struct{ kind, body string }{
		{"STRINGS", "v1\nv2\n# comment\n\n"},
		{"CASE_INSENSITIVE_STRINGS", "Jason\r\nJOHN"},
		{"IP_ADDRESSES", "10.57.0.0/16\n192.168.1.1\n::1\nnot-an-ip"},
		{"REGEX", "^/api/.*\n(unclosed"},
	} {
		f.Add(seed.kind, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, kind string, body []byte) {
		l, err := parseList(kind, body)
		if err != nil {
			return
		}
		l.contains("v1")
		l.contains(net.ParseIP("10.57.1.2").To4())
	})
}
