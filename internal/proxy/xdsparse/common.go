// Package xdsparse turns Envoy xDS v3 resources into the proxy's small
// internal types. It validates at this edge: whatever it cannot honour is an
// error naming the resource and field, which the xDS client sends back as a
// NACK. Route tables come out compiled, ready for allocation-free matching.
package xdsparse

import (
	"fmt"
	"os"
	"strings"

	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// hostname is what %HOSTNAME% writes: the machine's (the pod's) name.
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// headerValueOp compiles one header to add (key and value as configured;
// field and i name it in errors). Append is true, Envoy's default.
func headerValueOp(key, v, field string, i int) (HeaderValueOp, error) {
	name := strings.ToLower(key)
	if name == "" || !validHeaderName(name) {
		return HeaderValueOp{}, fmt.Errorf("%s[%d]: invalid header name %q", field, i, key)
	}
	if strings.HasPrefix(name, ":") && name != ":authority" {
		return HeaderValueOp{}, fmt.Errorf("%s[%d]: pseudo-header %q cannot be modified", field, i, name)
	}
	if name == ":authority" {
		name = "host"
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return HeaderValueOp{}, fmt.Errorf("%s[%d] %q: value contains CR, LF or NUL", field, i, name)
	}
	// Envoy formats header values: %VAR% is a command operator and %%
	// a literal percent sign; an operator headers cannot carry is refused.
	f, lit, err := accesslog.ParseHeaderValue(v)
	if err != nil {
		return HeaderValueOp{}, fmt.Errorf("%s[%d] %q: value %q: %w", field, i, name, v, err)
	}
	if f != nil {
		f.SetHostname(hostname())
	}
	return HeaderValueOp{Name: name, Value: lit, Format: f, Append: true}, nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ':' && i == 0 {
			continue
		}
		if !IsTokenChar(c) {
			return false
		}
	}
	return true
}

// IsTokenChar reports whether c may appear in an RFC 9110 token.
func IsTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
