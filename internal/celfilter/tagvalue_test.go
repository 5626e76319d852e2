package celfilter

import (
	"errors"
	"strings"
	"testing"
)

func TestTagValue(t *testing.T) {
	for in, want := range map[string]string{
		"request.host":                      "request.host",
		"string(destination.port)":          "destination.port",
		"request.headers['x-user']":         "request.headers['x-user']",
		`request.headers["x-user"]`:         "request.headers['x-user']",
		"upstream_peer.labels['app'].value": "upstream_peer.labels['app'].value",
		"upstream_peer.app":                 "upstream_peer.app",
		"'constant'":                        "'constant'",
		"response.code":                     "response.code",
		"downstream_peer.labels['version']": "downstream_peer.labels['version']",
	} {
		got, err := TagValue(in)
		if err != nil || got != want {
			t.Errorf("TagValue(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"request.host +":                            "invalid CEL",
		"request.path.startsWith('/api')":           "not supported",
		"request.headers['x'] + 'y'":                "not supported",
		"has(request.host) ? request.host : 'none'": "not supported",
		"request.size":                              "not supported",
		"upstream_peer.labels['team']":              "not carried",
		"'it''s'":                                   "invalid CEL",
	} {
		_, err := TagValue(in)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("TagValue(%q) = %v, want an error with %q", in, err, why)
		}
		if err != nil && why == "not supported" && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%q: not ErrUnsupported: %v", in, err)
		}
	}
}

func FuzzTagValue(f *testing.F) {
	for _, s := range []string{"request.host", "string(destination.port)", "request.headers['x']", "upstream_peer.labels['app'].value", "'x'", "a +"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 256 {
			return
		}
		TagValue(s)
	})
}
