package capture

import (
	"bytes"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// render is what a golden file holds: the commands --dry-run prints, then
// the iptables-restore input Install applies for each family.
func render(t *testing.T, rules []Rule) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rules {
		b.WriteString(r.String() + "\n")
	}
	for _, f := range []Family{IPv4, IPv6} {
		if in := RestoreInput(rules, f); len(in) > 0 {
			b.WriteString("\n# " + f.Command() + "-restore --noflush\n")
			b.Write(in)
		}
	}
	return b.Bytes()
}

func TestRulesGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string // mast-proxy iptables flags
	}{
		{"default", nil},
		{"ipv6", []string{"--ipv6", "-x", "10.96.0.0/12,fd00:10:96::/112", "-o", "3306"}},
		{"inbound-ports-include", []string{"-b", "9080, 9090,9080"}},
		{"inbound-none", []string{"-b", ""}},
		{"inbound-exclude", []string{"-d", "9000,15021,9001"}},
		{"outbound-cidrs", []string{"--ipv6", "-i", "10.0.0.0/8,172.16.0.0/12,fd00::/8", "-x", "10.10.0.0/16", "-q", "443", "-o", "22,3306"}},
		{"outbound-none", []string{"-i", ""}},
		{"loopback-include", []string{"-i", "127.0.0.1/32,10.0.0.0/8"}},
		{"owners", []string{"-u", "1337,1338", "-g", "2000"}},
		{"uid-only", []string{"-u", "101", "-g", ""}},
		{"exclude-interfaces", []string{"-c", "eth1,veth+"}},
		{"ports-custom", []string{"-p", "16001", "-z", "16006", "--inbound-tunnel-port", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := ParseArgs(tc.args, io.Discard)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tc.args, err)
			}
			rules, err := Rules(cfg)
			if err != nil {
				t.Fatalf("Rules: %v", err)
			}
			got := render(t, rules)
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

// TestRulesSemantics checks the properties the golden files are meant to
// have, so a wrong -update cannot silently bless a broken rule set.
func TestRulesSemantics(t *testing.T) {
	rules, err := Rules(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	lines := make([]string, len(rules))
	for i, r := range rules {
		lines[i] = r.String()
	}
	index := func(s string) int {
		for i, l := range lines {
			if l == s {
				return i
			}
		}
		t.Fatalf("missing rule %q in\n%s", s, strings.Join(lines, "\n"))
		return -1
	}
	// The proxy's own traffic returns before the catch-all redirect.
	uidReturn := index("iptables -t nat -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN")
	gidReturn := index("iptables -t nat -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN")
	redirect := index("iptables -t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT")
	if uidReturn > redirect || gidReturn > redirect {
		t.Errorf("owner RETURNs (%d, %d) after the redirect (%d)", uidReturn, gidReturn, redirect)
	}
	// Localhost returns before the catch-all redirect.
	if lo := index("iptables -t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN"); lo > redirect {
		t.Errorf("127.0.0.1 RETURN (%d) after the redirect (%d)", lo, redirect)
	}
	// Every reserved inbound port returns before the inbound redirect.
	inRedirect := index("iptables -t nat -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
	for _, p := range ReservedInboundPorts {
		if i := index("iptables -t nat -A ISTIO_INBOUND -p tcp --dport " + port(p) + " -j RETURN"); i > inRedirect {
			t.Errorf("reserved port %d returns after the inbound redirect", p)
		}
	}
	index("iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001")
	index("iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006")
	// Chains exist before anything jumps to them, and only Istio's names.
	for i, r := range rules {
		if r.Op == OpNewChain {
			if !strings.HasPrefix(r.Chain, ChainPrefix) {
				t.Errorf("rule %d creates %s, outside %s*", i, r.Chain, ChainPrefix)
			}
			continue
		}
		for _, a := range r.Args {
			if strings.HasPrefix(a, ChainPrefix) && !created(rules[:i], a) {
				t.Errorf("rule %d (%s) jumps to %s before it is created", i, r, a)
			}
		}
	}
	for _, r := range rules {
		if r.Family != IPv4 {
			t.Errorf("IPv6 rule %s without cfg.IPv6", r)
		}
	}
}

func created(rules []Rule, chain string) bool {
	for _, r := range rules {
		if r.Op == OpNewChain && r.Chain == chain {
			return true
		}
	}
	return false
}

func TestRulesFamilies(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IPv6 = true
	cfg.AllOutboundCIDRs = false
	cfg.IncludeOutboundCIDRs = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("::ffff:192.168.0.0/112"), // IPv4-mapped: an IPv4 /16
	}
	rules, err := Rules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var v4, v6 []string
	for _, r := range rules {
		if r.Chain == ChainOutput && len(r.Args) == 4 && r.Args[0] == "-d" && r.Args[3] == ChainRedirect {
			if r.Family == IPv4 {
				v4 = append(v4, r.Args[1])
			} else {
				v6 = append(v6, r.Args[1])
			}
		}
	}
	if got, want := strings.Join(v4, " "), "10.0.0.0/8 192.168.0.0/16"; got != want {
		t.Errorf("IPv4 include CIDRs = %q, want %q", got, want)
	}
	if got, want := strings.Join(v6, " "), "fd00::/8"; got != want {
		t.Errorf("IPv6 include CIDRs = %q, want %q", got, want)
	}
}
