package upstream

import (
	"net/url"
	"strings"
)

// parseURL builds the URL for an HTTP/2 request so that the origin-form
// target is sent byte for byte as :path (no re-escaping).
func parseURL(addr, target string) (*url.URL, error) {
	p, q, _ := strings.Cut(target, "?")
	return &url.URL{Scheme: "http", Host: addr, Opaque: p, RawQuery: q}, nil
}
