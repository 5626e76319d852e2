package model

import (
	"strings"
)

// ResolveHost turns a host as written in configuration into the FQDN Istio
// would use: a short name without dots ("reviews") becomes
// "reviews.NAMESPACE.svc.DOMAINSUFFIX"; names with dots and wildcards are kept.
func ResolveHost(host, namespace, domainSuffix string) string {
	if host == "" || host == "*" || strings.IndexByte(host, '.') >= 0 {
		return host
	}
	return host + "." + namespace + ".svc." + domainSuffix
}

// HostMatches reports whether pattern (an exact host, "*" or "*.suffix")
// matches host. Both are compared case-sensitively as Istio does.
func HostMatches(pattern, host string) bool {
	if pattern == host || pattern == "*" {
		return true
	}
	if strings.HasPrefix(pattern, "*") {
		suffix := pattern[1:] // ".example.com"
		if strings.HasPrefix(host, "*") {
			// a wildcard host is matched by a wider-or-equal wildcard
			return strings.HasSuffix(host[1:], suffix)
		}
		return strings.HasSuffix(host, suffix)
	}
	return false
}

// HostsIntersect reports whether two hosts, either possibly wildcards, can match a common name.
func HostsIntersect(a, b string) bool {
	return HostMatches(a, b) || HostMatches(b, a)
}

// LabelsMatch reports whether every selector label is present in labels with
// the same value. An empty selector matches everything.
func LabelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ExportedTo reports whether a resource in namespace ns with the given
// exportTo list is visible from namespace to. Empty or "*" means everywhere,
// "." the resource's own namespace, "~" nowhere.
func ExportedTo(exportTo []string, ns, to string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch e {
		case "*":
			return true
		case ".":
			if ns == to {
				return true
			}
		case "~":
		default:
			if e == to {
				return true
			}
		}
	}
	return false
}
