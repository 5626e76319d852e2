package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The list syntax is istio-iptables': comma-separated, spaces around items
// ignored, empty items skipped, "*" alone means everything where allowed.

// items splits a comma-separated list, trimming spaces and dropping empty
// items.
func items(s string) []string {
	var out []string
	for it := range strings.SplitSeq(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// ParsePorts parses a port list such as "9080, 9090" or, when wildcard is
// allowed, "*". flag names the flag in errors.
func ParsePorts(flag, s string, wildcard bool) (all bool, ports []uint16, err error) {
	its := items(s)
	for _, it := range its {
		if it == "*" {
			if !wildcard {
				return false, nil, fmt.Errorf("%s: %q: \"*\" is not allowed here; list the ports", flag, s)
			}
			if len(its) > 1 {
				return false, nil, fmt.Errorf("%s: %q: \"*\" means every port and cannot be combined with other ports", flag, s)
			}
			return true, nil, nil
		}
		n, perr := strconv.ParseUint(it, 10, 16)
		if perr != nil || n == 0 {
			return false, nil, fmt.Errorf("%s: %q is not a port (want 1-65535)", flag, it)
		}
		ports = append(ports, uint16(n))
	}
	return false, ports, nil
}

// ParseCIDRs parses a CIDR list such as "10.0.0.0/8,fd00::/8" or, when
// wildcard is allowed, "*". Addresses must carry a prefix length; host bits
// are cleared (10.1.2.3/8 means 10.0.0.0/8), as iptables would.
func ParseCIDRs(flag, s string, wildcard bool) (all bool, cidrs []netip.Prefix, err error) {
	its := items(s)
	for _, it := range its {
		if it == "*" {
			if !wildcard {
				return false, nil, fmt.Errorf("%s: %q: \"*\" is not allowed here; list the CIDRs", flag, s)
			}
			if len(its) > 1 {
				return false, nil, fmt.Errorf("%s: %q: \"*\" means every address and cannot be combined with CIDRs", flag, s)
			}
			return true, nil, nil
		}
		p, perr := netip.ParsePrefix(it)
		if perr != nil {
			hint := ""
			if _, aerr := netip.ParseAddr(it); aerr == nil {
				hint = " (an address needs a prefix length, e.g. /32 or /128)"
			}
			return false, nil, fmt.Errorf("%s: %q is not a CIDR%s", flag, it, hint)
		}
		cidrs = append(cidrs, p.Masked())
	}
	return false, cidrs, nil
}

// ParseIDs parses a list of numeric user or group IDs such as "1337,0".
func ParseIDs(flag, s string) ([]uint32, error) {
	var ids []uint32
	for _, it := range items(s) {
		n, err := strconv.ParseUint(it, 10, 32)
		if err != nil || n == 1<<32-1 {
			return nil, fmt.Errorf("%s: %q is not a numeric user or group ID", flag, it)
		}
		ids = append(ids, uint32(n))
	}
	return ids, nil
}

// ParseInterfaces parses a list of interface names.
func ParseInterfaces(flag, s string) ([]string, error) {
	its := items(s)
	for _, it := range its {
		if !interfaceName.MatchString(it) {
			return nil, fmt.Errorf("%s: %q is not an interface name", flag, it)
		}
	}
	return its, nil
}
