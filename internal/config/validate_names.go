package config

import (
	"errors"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

// isDNSLabel reports whether s is an RFC 1123 label: 1..63 letters, digits
// and '-', starting and ending with a letter or digit. Upper case letters are
// allowed only when upper is true (hostnames), not for Kubernetes names.
func isDNSLabel(s string, upper bool) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z' && upper:
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// isDNSSubdomain reports whether s is a Kubernetes object name: lower-case
// RFC 1123 labels joined by '.', at most 253 characters.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l, false) {
			return false
		}
	}
	return true
}

// isWildcardDNSLabel accepts "*", "*foo", "*-foo" and DNS labels.
func isWildcardDNSLabel(s string) bool {
	if s == "*" {
		return true
	}
	if strings.HasPrefix(s, "*-") {
		s = s[2:]
	} else if strings.HasPrefix(s, "*") {
		s = s[1:]
	}
	return isDNSLabel(s, true)
}

func checkDNSPreconditions(name string) error {
	if len(name) > 255 {
		return errf("domain name %q too long (max 255)", name)
	}
	if len(name) == 0 {
		return errors.New("empty domain name not allowed")
	}
	return nil
}

func validateDNSLabels(domain string) error {
	parts := strings.Split(domain, ".")
	if tld := parts[len(parts)-1]; tld != "" {
		if _, err := strconv.Atoi(tld); err == nil {
			return errf("domain name %q invalid (top level domain %q cannot be all-numeric)", domain, tld)
		}
	}
	for i, l := range parts {
		if i == len(parts)-1 && l == "" && i > 0 {
			return nil // trailing dot, as in "istio.io."
		}
		if !isDNSLabel(l, true) {
			return errf("domain name %q invalid (label %q invalid)", domain, l)
		}
	}
	return nil
}

// validateFQDN checks a domain name without wildcards. Short names ("reviews")
// are accepted: they are single-label names.
func validateFQDN(fqdn string) error {
	if err := checkDNSPreconditions(fqdn); err != nil {
		return err
	}
	return validateDNSLabels(fqdn)
}

// validateWildcardDomain checks a domain name that may have a wildcard in its
// first label ("*", "*.example.com", "*foo.example.com").
func validateWildcardDomain(domain string) error {
	if err := checkDNSPreconditions(domain); err != nil {
		return err
	}
	first, rest, hasRest := strings.Cut(domain, ".")
	if !isWildcardDNSLabel(first) {
		return errf("domain name %q invalid (label %q invalid)", domain, first)
	}
	if strings.Contains(rest, "*") {
		return errf("domain name %q invalid (wildcard '*' is only allowed in the first label)", domain)
	}
	if hasRest {
		return validateDNSLabels(rest)
	}
	return nil
}

func validatePartialWildcard(host string) error {
	if strings.Contains(host, "*") && len(host) != 1 && !strings.HasPrefix(host, "*.") {
		return errf("partial wildcard %q not allowed", host)
	}
	return nil
}

// validateNamespaceSlashHost checks a "namespace/dnsName" host of a Gateway
// server (where the namespace part is optional) or a Sidecar egress listener.
func validateNamespaceSlashHost(host string, isGateway bool) []error {
	ns, name, ok := strings.Cut(host, "/")
	if !ok {
		if isGateway {
			return validateSidecarOrGatewayHostPart(host, true)
		}
		return []error{errf("host %q must be of form namespace/dnsName", host)}
	}
	var errs []error
	if ns == "" || name == "" {
		errs = append(errs, errors.New("config namespace and dnsName in host entry cannot be empty"))
	}
	if ns != "*" && ns != "." && (ns != "~" || isGateway) && !isDNSLabel(ns, false) {
		what := "sidecar"
		if isGateway {
			what = "gateway"
		}
		errs = append(errs, errf("invalid namespace value %q in %s", ns, what))
	}
	return append(errs, validateSidecarOrGatewayHostPart(name, isGateway)...)
}

func validateSidecarOrGatewayHostPart(host string, isGateway bool) []error {
	var errs []error
	if host != "*" && !strings.Contains(host, ".") {
		errs = append(errs, errf("short name %q is not allowed here; use a fully qualified name such as %q", host, host+".default.svc.cluster.local"))
	}
	if err := validateWildcardDomain(host); err != nil {
		if !isGateway || !isIP(host) {
			errs = append(errs, err)
		}
	}
	if err := validatePartialWildcard(host); err != nil {
		errs = append(errs, err)
	}
	return errs
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func validateIP(s string) error {
	if !isIP(s) {
		return errf("%q is not a valid IP address", s)
	}
	return nil
}

// validateIPSubnet accepts an IP address or a CIDR block.
func validateIPSubnet(s string) error {
	if strings.Count(s, "/") == 1 {
		if _, err := netip.ParsePrefix(s); err != nil {
			return errf("%q is not a valid CIDR block", s)
		}
		return nil
	}
	return validateIP(s)
}

func validatePort(port int) error {
	if port >= 1 && port <= 65535 {
		return nil
	}
	return errf("port number %d must be in the range 1..65535", port)
}

func validatePortName(name string) error {
	if !isDNSLabel(name, false) {
		return errf("invalid port name %q: must be a DNS label", name)
	}
	return nil
}

// Protocols known to Istio (case-insensitive).
var protocols = map[string]string{
	"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP", "http_proxy": "HTTP_PROXY",
	"http2": "HTTP2", "https": "HTTPS", "tls": "TLS", "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL",
}

func protocolOf(p string) string { return protocols[strings.ToLower(p)] }

func isHTTPProtocol(p string) bool {
	switch protocolOf(p) {
	case "HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web":
		return true
	}
	return false
}

func isTLSProtocol(p string) bool {
	switch protocolOf(p) {
	case "HTTPS", "TLS":
		return true
	}
	return false
}

func isTCPProtocol(p string) bool {
	switch protocolOf(p) {
	case "TCP", "HTTPS", "TLS", "Mongo", "Redis", "MySQL":
		return true
	}
	return false
}

func validateProtocol(p string) error {
	if p != "" && protocolOf(p) == "" {
		return errf("unsupported protocol %q; want one of HTTP, HTTPS, HTTP2, GRPC, GRPC-Web, TLS, TCP, Mongo, Redis, MySQL", p)
	}
	return nil
}

// validateDuration checks a duration that must be at least 1ms, with
// millisecond precision.
func validateDuration(d *durationpb.Duration) error {
	if d == nil {
		return nil
	}
	if err := d.CheckValid(); err != nil {
		return err
	}
	dur := d.AsDuration()
	if dur < time.Millisecond {
		return errf("duration %v must be at least 1ms", dur)
	}
	if dur%time.Millisecond != 0 {
		return errf("duration %v: only millisecond precision is supported", dur)
	}
	return nil
}

// validateTimeout checks a duration where 0 means "disabled".
func validateTimeout(d *durationpb.Duration) error {
	if d == nil {
		return nil
	}
	dur := d.AsDuration()
	if dur < 0 || d.CheckValid() != nil {
		return errf("duration %v must not be negative", dur)
	}
	if dur%time.Millisecond != 0 {
		return errf("duration %v: only millisecond precision is supported", dur)
	}
	return nil
}

var (
	labelNameRE  = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValueRE = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
)

// validateQualifiedName checks a Kubernetes label or annotation key:
// an optional DNS subdomain prefix and '/', then a name of at most 63 characters.
func validateQualifiedName(k string) error {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name = k
	} else if !isDNSSubdomain(prefix) {
		return errf("%q: prefix %q must be a DNS subdomain", k, prefix)
	}
	if len(name) == 0 || len(name) > 63 || !labelNameRE.MatchString(name) {
		return errf("%q: name must be 1..63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", k)
	}
	return nil
}

func validateLabelValue(v string) error {
	if len(v) > 63 || !labelValueRE.MatchString(v) {
		return errf("%q: must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
	}
	return nil
}

// validateUnixAddress checks the path part of a unix:// address.
func validateUnixAddress(addr string) error {
	if addr == "" {
		return errors.New("unix address must not be empty")
	}
	if strings.HasPrefix(addr, "@") {
		return nil // abstract socket
	}
	if !path.IsAbs(addr) || strings.HasSuffix(addr, "/") {
		return errf("%s is not an absolute path to a file", addr)
	}
	return nil
}

const unixPrefix = "unix://"

// hostMatches reports whether two hosts overlap, with wildcard semantics
// ("*.example.com" matches "a.example.com"; "*" matches everything).
func hostMatches(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		if len(a) < len(b) {
			return strings.HasSuffix(b[1:], a[1:])
		}
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// hostSubsetOf reports whether every host matched by a is also matched by b.
func hostSubsetOf(a, b string) bool {
	if strings.HasPrefix(b, "*") {
		return strings.HasSuffix(strings.TrimPrefix(a, "*"), b[1:])
	}
	return !strings.HasPrefix(a, "*") && a == b
}

func validateRegex(re string) error {
	if re == "" {
		return errors.New("regex must not be empty")
	}
	if len(re) > 1024 {
		return errors.New("regex is too large, max length allowed is 1024")
	}
	if _, err := regexp.Compile(re); err != nil {
		return errf("%v; Istio uses RE2 syntax (https://github.com/google/re2/wiki/Syntax)", err)
	}
	return nil
}
