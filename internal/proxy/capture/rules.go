package capture

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Family is the IP version a rule belongs to: IPv4 rules are installed with
// iptables, IPv6 rules with ip6tables.
type Family uint8

// The two families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Command is the iptables program for the family: "iptables" or "ip6tables".
func (f Family) Command() string {
	if f == IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// Op is what a rule does to its chain.
type Op string

// The operations Rules emits.
const (
	OpNewChain Op = "-N" // create Chain; Args is empty
	OpAppend   Op = "-A" // append Args to Chain
)

// Rule is one iptables command: `iptables -t Table Op Chain Args...`.
type Rule struct {
	Family Family
	Table  string
	Op     Op
	Chain  string
	Args   []string
}

// Argv is the rule as arguments to the family's iptables program.
func (r Rule) Argv() []string {
	argv := make([]string, 0, 4+len(r.Args))
	argv = append(argv, "-t", r.Table, string(r.Op), r.Chain)
	return append(argv, r.Args...)
}

// String is the rule as a shell command line, e.g.
// "iptables -t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN". No argument
// Rules produces needs quoting.
func (r Rule) String() string {
	return r.Family.Command() + " " + strings.Join(r.Argv(), " ")
}

// Rules returns the iptables commands that install cfg, in order: IPv4 rules,
// then IPv6 rules when cfg.IPv6 is set. Within a family, chains are created
// first; the order of appends within a chain is the order of evaluation.
// It is a pure function of cfg.
func Rules(cfg Config) ([]Rule, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rules := familyRules(nil, &cfg, IPv4)
	if cfg.IPv6 {
		rules = familyRules(rules, &cfg, IPv6)
	}
	return rules, nil
}

// familyRules appends one family's rules; it mirrors istio-iptables'
// IptablesConfigurator.Run in REDIRECT mode without DNS capture.
func familyRules(out []Rule, c *Config, f Family) []Rule {
	loopback, passthroughSrc := "127.0.0.1/32", "127.0.0.6/32"
	if f == IPv6 {
		loopback, passthroughSrc = "::1/128", "::6/128"
	}
	add := func(chain string, args ...string) {
		out = append(out, Rule{Family: f, Table: "nat", Op: OpAppend, Chain: chain, Args: args})
	}
	for _, ch := range []string{ChainInbound, ChainRedirect, ChainInRedirect, ChainOutput} {
		out = append(out, Rule{Family: f, Table: "nat", Op: OpNewChain, Chain: ch})
	}

	// Interfaces whose traffic is never captured. istio-iptables puts these
	// RETURNs in PREROUTING and OUTPUT before the jumps; first in Mast's own
	// chains is equivalent and keeps Uninstall to Mast's chains.
	for _, ifc := range c.ExcludeInterfaces {
		add(ChainInbound, "-i", ifc, "-j", "RETURN")
	}
	if c.InboundTunnelPort != 0 {
		add(ChainInbound, "-p", "tcp", "--dport", port(c.InboundTunnelPort), "-j", "RETURN")
	}
	add(ChainRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", port(c.OutboundPort))
	add(ChainInRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", port(c.InboundPort))

	// Inbound.
	if c.AllInboundPorts || len(c.IncludeInboundPorts) > 0 {
		add("PREROUTING", "-p", "tcp", "-j", ChainInbound)
		if c.AllInboundPorts {
			for _, p := range inboundExcluded(c) {
				add(ChainInbound, "-p", "tcp", "--dport", port(p), "-j", "RETURN")
			}
			add(ChainInbound, "-p", "tcp", "-j", ChainInRedirect)
		} else {
			for _, p := range dedupe(c.IncludeInboundPorts) {
				add(ChainInbound, "-p", "tcp", "--dport", port(p), "-j", ChainInRedirect)
			}
		}
	}

	// Outbound.
	add("OUTPUT", "-p", "tcp", "-j", ChainOutput)
	for _, ifc := range c.ExcludeInterfaces {
		add(ChainOutput, "-o", ifc, "-j", "RETURN")
	}
	// Port exclusions come before the redirect of connections back to self.
	for _, p := range dedupe(c.ExcludeOutboundPorts) {
		add(ChainOutput, "-p", "tcp", "--dport", port(p), "-j", "RETURN")
	}
	// The proxy's inbound passthrough connects to the app from 127.0.0.6.
	add(ChainOutput, "-o", "lo", "-s", passthroughSrc, "-j", "RETURN")
	// When an app reaches itself through a service address, the proxy's
	// outbound leg comes back over lo to the pod's own address: send it to
	// the inbound listener (app → proxy out → proxy in → app). Other
	// loopback traffic of the app is its own business; everything else the
	// proxy sends is never captured.
	loopbackIncluded := includesLoopback(c.IncludeOutboundCIDRs)
	owners := func(match string, ids []uint32) {
		for _, id := range ids {
			s := strconv.FormatUint(uint64(id), 10)
			args := []string{"-o", "lo", "!", "-d", loopback, "-p", "tcp"}
			if c.InboundTunnelPort != 0 {
				args = append(args, "!", "--dport", port(c.InboundTunnelPort))
			}
			add(ChainOutput, append(args, "-m", "owner", match, s, "-j", ChainInRedirect)...)
			if !loopbackIncluded {
				add(ChainOutput, "-o", "lo", "-m", "owner", "!", match, s, "-j", "RETURN")
			}
			add(ChainOutput, "-m", "owner", match, s, "-j", "RETURN")
		}
	}
	owners("--uid-owner", c.ProxyUIDs)
	owners("--gid-owner", c.ProxyGIDs)
	// Apps that talk to localhost know what they are doing.
	add(ChainOutput, "-d", loopback, "-j", "RETURN")
	for _, p := range familyPrefixes(c.ExcludeOutboundCIDRs, f) {
		add(ChainOutput, "-d", p.String(), "-j", "RETURN")
	}
	for _, p := range dedupe(c.IncludeOutboundPorts) {
		add(ChainOutput, "-p", "tcp", "--dport", port(p), "-j", ChainRedirect)
	}
	if c.AllOutboundCIDRs {
		add(ChainOutput, "-j", ChainRedirect)
	} else {
		for _, p := range familyPrefixes(c.IncludeOutboundCIDRs, f) {
			add(ChainOutput, "-d", p.String(), "-j", ChainRedirect)
		}
	}
	return out
}

// inboundExcluded is ReservedInboundPorts then c.ExcludeInboundPorts, each
// once.
func inboundExcluded(c *Config) []uint16 {
	ps := make([]uint16, 0, len(ReservedInboundPorts)+len(c.ExcludeInboundPorts))
	ps = append(ps, ReservedInboundPorts[:]...)
	return dedupe(append(ps, c.ExcludeInboundPorts...))
}

// dedupe returns ps without repeats, first occurrence kept.
func dedupe(ps []uint16) []uint16 {
	out := make([]uint16, 0, len(ps))
	for _, p := range ps {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// familyPrefixes returns the masked prefixes of ps in family f, each once.
func familyPrefixes(ps []netip.Prefix, f Family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		a := p.Addr().Unmap()
		if a.Is4() != (f == IPv4) {
			continue
		}
		bits := p.Bits()
		if p.Addr().Is4In6() {
			bits -= 96
			if bits < 0 {
				bits = 0
			}
		}
		m := netip.PrefixFrom(a, bits).Masked()
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// includesLoopback reports whether an outbound include CIDR is a loopback
// range: then the app's loopback traffic is captured too (Istio's rule).
func includesLoopback(ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Addr().Unmap().IsLoopback() {
			return true
		}
	}
	return false
}

func port(p uint16) string { return strconv.FormatUint(uint64(p), 10) }

// RestoreInput renders the rules of family f in iptables-restore format, to
// be applied with `iptables-restore --noflush` in one transaction: either
// every rule lands or none does.
func RestoreInput(rules []Rule, f Family) []byte {
	var tables []string
	for _, r := range rules {
		if r.Family == f && !slices.Contains(tables, r.Table) {
			tables = append(tables, r.Table)
		}
	}
	var b bytes.Buffer
	for _, t := range tables {
		b.WriteString("*" + t + "\n")
		for _, r := range rules {
			if r.Family == f && r.Table == t && r.Op == OpNewChain {
				b.WriteString(":" + r.Chain + " - [0:0]\n")
			}
		}
		for _, r := range rules {
			if r.Family == f && r.Table == t && r.Op != OpNewChain {
				b.WriteString(string(r.Op) + " " + r.Chain)
				for _, a := range r.Args {
					b.WriteByte(' ')
					b.WriteString(a)
				}
				b.WriteByte('\n')
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.Bytes()
}
