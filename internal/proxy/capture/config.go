// Package capture installs and removes the iptables rules that transparently
// redirect a workload's TCP traffic through its sidecar: outbound connections
// to the proxy's outbound port (15001) and inbound connections to its inbound
// port (15006). The rule set follows Istio's istio-iptables (REDIRECT mode)
// rule for rule, with Istio's chain names, so that existing tooling and
// habits carry over; the proxy finds where a redirected connection was going
// with OriginalDst.
//
// Rules is a pure function of Config; Install and Uninstall run the iptables
// programs through a Runner; Main is the `mast-proxy iptables` command line.
package capture

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
)

// Istio's chain names. Every chain Mast creates starts with ChainPrefix, and
// Uninstall removes exactly the chains with that prefix and the jumps to them.
const (
	ChainPrefix     = "ISTIO_"
	ChainInbound    = "ISTIO_INBOUND"     // nat PREROUTING jumps here for TCP
	ChainInRedirect = "ISTIO_IN_REDIRECT" // REDIRECT to the inbound port
	ChainOutput     = "ISTIO_OUTPUT"      // nat OUTPUT jumps here for TCP
	ChainRedirect   = "ISTIO_REDIRECT"    // REDIRECT to the outbound port
)

// Default ports and identities (Istio's).
const (
	DefaultOutboundPort      = 15001
	DefaultInboundPort       = 15006
	DefaultInboundTunnelPort = 15008
	DefaultProxyID           = 1337
)

// ReservedInboundPorts are the proxy's own ports that are never captured on
// the way in, whatever the configuration says: admin (15000, loopback only),
// merged metrics (15020), readiness (15021) and proxy stats (15090). Istio's
// injector always passes the last three to istio-iptables with -d.
var ReservedInboundPorts = [...]uint16{15090, 15021, 15020, 15000}

// Config says which traffic to capture. The zero value is not useful; start
// from DefaultConfig. Field comments name the istio-iptables flag that sets
// the same thing.
type Config struct {
	// ProxyUIDs and ProxyGIDs identify the proxy's own sockets (-u, -g): their
	// outbound traffic is never redirected, or it would loop back into the
	// proxy. At least one UID or GID is required.
	ProxyUIDs []uint32
	ProxyGIDs []uint32

	// OutboundPort receives redirected outbound connections (-p, 15001);
	// InboundPort receives redirected inbound ones (-z, 15006).
	OutboundPort uint16
	InboundPort  uint16
	// InboundTunnelPort is never captured inbound (--inbound-tunnel-port,
	// 15008, Istio's HBONE port); 0 leaves it out.
	InboundTunnelPort uint16

	// AllInboundPorts captures every inbound TCP port (-b "*") except
	// ExcludeInboundPorts and ReservedInboundPorts. Otherwise only
	// IncludeInboundPorts are captured (-b 9080,9090); none captures nothing.
	AllInboundPorts     bool
	IncludeInboundPorts []uint16
	ExcludeInboundPorts []uint16 // -d; only meaningful with AllInboundPorts

	// AllOutboundCIDRs captures outbound TCP to any destination (-i "*").
	// Otherwise only IncludeOutboundCIDRs are captured (-i 10.0.0.0/8).
	// ExcludeOutboundCIDRs (-x) win over both.
	AllOutboundCIDRs     bool
	IncludeOutboundCIDRs []netip.Prefix
	ExcludeOutboundCIDRs []netip.Prefix
	// IncludeOutboundPorts are captured whatever the destination address
	// (-q); ExcludeOutboundPorts are never captured (-o).
	IncludeOutboundPorts []uint16
	ExcludeOutboundPorts []uint16

	// ExcludeInterfaces are network interfaces whose traffic is never
	// captured, in or out (-c).
	ExcludeInterfaces []string

	// IPv6 also installs the same rules with ip6tables (Istio's
	// ENABLE_INBOUND_IPV6). IPv6 CIDRs are ignored when it is off.
	IPv6 bool
}

// DefaultConfig is what a sidecar wants: capture all inbound and outbound
// TCP, proxy runs as 1337:1337, Istio's ports.
func DefaultConfig() Config {
	return Config{
		ProxyUIDs:         []uint32{DefaultProxyID},
		ProxyGIDs:         []uint32{DefaultProxyID},
		OutboundPort:      DefaultOutboundPort,
		InboundPort:       DefaultInboundPort,
		InboundTunnelPort: DefaultInboundTunnelPort,
		AllInboundPorts:   true,
		AllOutboundCIDRs:  true,
	}
}

// interfaceName is what Linux accepts as an interface name (IFNAMSIZ 16,
// no '/', no whitespace); a trailing '+' is iptables' wildcard.
var interfaceName = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}\+?$`)

// Validate reports the first thing wrong with c, naming the field.
func (c *Config) Validate() error {
	if len(c.ProxyUIDs) == 0 && len(c.ProxyGIDs) == 0 {
		return fmt.Errorf("capture: ProxyUIDs and ProxyGIDs are both empty: the proxy's own traffic would be redirected back into it")
	}
	if c.OutboundPort == 0 {
		return fmt.Errorf("capture: OutboundPort: port 0 is not a port (want 1-65535)")
	}
	if c.InboundPort == 0 {
		return fmt.Errorf("capture: InboundPort: port 0 is not a port (want 1-65535)")
	}
	if c.OutboundPort == c.InboundPort {
		return fmt.Errorf("capture: OutboundPort and InboundPort are both %d: inbound and outbound traffic must reach different listeners", c.InboundPort)
	}
	if c.AllInboundPorts && len(c.IncludeInboundPorts) > 0 {
		return fmt.Errorf("capture: IncludeInboundPorts %v given with AllInboundPorts: use one or the other", c.IncludeInboundPorts)
	}
	if c.AllOutboundCIDRs && len(c.IncludeOutboundCIDRs) > 0 {
		return fmt.Errorf("capture: IncludeOutboundCIDRs %v given with AllOutboundCIDRs: use one or the other", c.IncludeOutboundCIDRs)
	}
	for _, l := range []struct {
		name  string
		ports []uint16
	}{
		{"IncludeInboundPorts", c.IncludeInboundPorts},
		{"ExcludeInboundPorts", c.ExcludeInboundPorts},
		{"IncludeOutboundPorts", c.IncludeOutboundPorts},
		{"ExcludeOutboundPorts", c.ExcludeOutboundPorts},
	} {
		if slices.Contains(l.ports, 0) {
			return fmt.Errorf("capture: %s: port 0 is not a port (want 1-65535)", l.name)
		}
	}
	for _, p := range c.IncludeInboundPorts {
		if slices.Contains(ReservedInboundPorts[:], p) {
			return fmt.Errorf("capture: IncludeInboundPorts: %d is one of the proxy's own ports %v, which are never captured", p, ReservedInboundPorts)
		}
	}
	for _, l := range []struct {
		name string
		ps   []netip.Prefix
	}{
		{"IncludeOutboundCIDRs", c.IncludeOutboundCIDRs},
		{"ExcludeOutboundCIDRs", c.ExcludeOutboundCIDRs},
	} {
		for i, p := range l.ps {
			if !p.IsValid() {
				return fmt.Errorf("capture: %s[%d]: not a valid CIDR", l.name, i)
			}
		}
	}
	for _, name := range c.ExcludeInterfaces {
		if !interfaceName.MatchString(name) {
			return fmt.Errorf("capture: ExcludeInterfaces: %q is not an interface name", name)
		}
	}
	return nil
}
