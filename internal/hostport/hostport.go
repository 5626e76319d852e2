// Package hostport removes the port from a Host or :authority value the way
// Envoy does when a route configuration says ignore_port_in_host_matching.
package hostport

import "strings"

// WithoutPort returns authority without its port: everything before the
// last ':' unless a ']' comes after it (an IPv6 literal without a port,
// "[fd00::6]"), as Envoy's HeaderUtility::getPortStart. The port is not
// checked to be digits, and "host:" becomes "host", as in Envoy. The result
// is a prefix of authority (no allocation).
func WithoutPort(authority string) string {
	colon := strings.LastIndexByte(authority, ':')
	if colon < 0 {
		return authority
	}
	if strings.LastIndexByte(authority, ']') > colon {
		return authority
	}
	return authority[:colon]
}
