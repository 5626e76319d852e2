package netns

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/capture"
)

// canonical makes an iptables rule comparable with what iptables-save
// prints for it: iptables-save adds the implicit "-m tcp" and orders
// options its own way, so compare the multiset of words.
func canonical(rule string) string {
	words := strings.Fields(strings.ReplaceAll(rule, " -m tcp ", " "))
	slices.Sort(words)
	return strings.Join(words, " ")
}

// byChain groups the "-A CHAIN ..." lines of iptables-save output (or
// restore input) by chain, in order, in canonical form.
func byChain(text string) map[string][]string {
	m := map[string][]string{}
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "-A "); ok {
			chain, _, _ := strings.Cut(rest, " ")
			m[chain] = append(m[chain], canonical(line))
		}
	}
	return m
}

// TestInstallMatchesRules installs a configuration with IPv6 through each
// iptables backend present (nf_tables and legacy) and checks that the
// kernel holds exactly Rules' rules, in order, in both families; then that
// Uninstall brings every table back to what it was.
func TestInstallMatchesRules(t *testing.T) {
	Require(t, "iptables")
	cfg := capture.DefaultConfig()
	cfg.IPv6 = true
	cfg.ExcludeInboundPorts = []uint16{9000}
	cfg.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:96::/64")}
	cfg.ExcludeOutboundPorts = []uint16{22}
	cfg.ExcludeInterfaces = []string{"eth1"}
	cfg.ProxyUIDs = []uint32{1337, 1338}
	rules, err := capture.Rules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			if _, err := exec.LookPath("iptables-" + backend + "-restore"); err != nil {
				t.Skipf("iptables %s backend not installed: %v", backend, err)
			}
			ns := NewNamespace(t, backend)
			run, err := capture.WithBackend(ns.Runner(), backend)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			save := func(f capture.Family) string {
				out, err := run(ctx, nil, f.Command()+"-save")
				if err != nil {
					t.Fatal(err)
				}
				return stripComments(string(out))
			}
			before4, before6 := save(capture.IPv4), save(capture.IPv6)
			if err := capture.Install(ctx, cfg, run); err != nil {
				t.Fatal(err)
			}
			for _, f := range []capture.Family{capture.IPv4, capture.IPv6} {
				got, want := byChain(save(f)), byChain(string(capture.RestoreInput(rules, f)))
				for chain, w := range want {
					if !slices.Equal(got[chain], w) {
						t.Errorf("%s %s chain %s in the kernel:\n%s\nwant:\n%s", backend, f.Command(), chain,
							strings.Join(got[chain], "\n"), strings.Join(w, "\n"))
					}
				}
				for chain := range got {
					if _, ok := want[chain]; !ok {
						t.Errorf("%s %s: unexpected rules in chain %s: %q", backend, f.Command(), chain, got[chain])
					}
				}
			}
			if out, err := ns.Exec(ctx, "ip", "-6", "addr", "show", "dev", "lo"); err != nil || !strings.Contains(string(out), "inet6 ::6/128") {
				t.Errorf("::6 not on lo: %v\n%s", err, out)
			}
			if err := capture.Uninstall(ctx, run); err != nil {
				t.Fatal(err)
			}
			// nf_tables keeps a table once created, with no rules: compare
			// rules and user chains, not table presence.
			if got, want := rulesAndChains(save(capture.IPv4)), rulesAndChains(before4); got != want {
				t.Errorf("%s iptables after Uninstall:\n%s\nwant:\n%s", backend, got, want)
			}
			if got, want := rulesAndChains(save(capture.IPv6)), rulesAndChains(before6); got != want {
				t.Errorf("%s ip6tables after Uninstall:\n%s\nwant:\n%s", backend, got, want)
			}
			// A second Uninstall has nothing to do and succeeds.
			if err := capture.Uninstall(ctx, run); err != nil {
				t.Errorf("second Uninstall: %v", err)
			}
		})
	}
}

func stripComments(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if !strings.HasPrefix(line, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// rulesAndChains is the rules and the user-defined chains of iptables-save
// output.
func rulesAndChains(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, "-A ") || (strings.HasPrefix(line, ":") && strings.Contains(line, " - [")) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// TestOriginalDst redirects connections with a plain REDIRECT rule in a
// namespace and checks what OriginalDst reports, for IPv4, IPv6, and IPv4
// on a dual-stack listener; and that an unredirected connection reports
// its own local address.
func TestOriginalDst(t *testing.T) {
	Require(t, "iptables", "ip6tables")
	ns := NewNamespace(t, "origdst")
	ctx := context.Background()
	for _, args := range [][]string{
		{"ip", "addr", "add", "10.88.0.1/32", "dev", "lo"},
		{"ip", "-6", "addr", "add", "fd00:88::1/128", "dev", "lo", "nodad"},
		{"iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.88.0.1", "--dport", "80", "-j", "REDIRECT", "--to-ports", "15001"},
		{"ip6tables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "fd00:88::1", "--dport", "443", "-j", "REDIRECT", "--to-ports", "15001"},
	} {
		if out, err := ns.Exec(ctx, args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	l, err := ns.Listen("tcp", ":15001") // dual-stack: IPv4 arrives v4-mapped
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct{ dial, want string }{
		{"10.88.0.1:80", "10.88.0.1:80"},
		{"[fd00:88::1]:443", "[fd00:88::1]:443"},
		{"10.88.0.1:15001", "10.88.0.1:15001"}, // not redirected: itself
	} {
		t.Run(tc.dial, func(t *testing.T) {
			c, err := ns.Dial(ctx, "tcp", tc.dial)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := capture.OriginalDst(s.(*net.TCPConn))
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("OriginalDst = %v (local %v), want %s", got, s.LocalAddr(), tc.want)
			}
		})
	}
}

// BenchmarkOriginalDst measures the getsockopt a proxy makes per accepted
// redirected connection.
func BenchmarkOriginalDst(b *testing.B) {
	Require(b, "iptables")
	ns := NewNamespace(b, "bench")
	ctx := context.Background()
	for _, args := range [][]string{
		{"ip", "addr", "add", "10.88.0.1/32", "dev", "lo"},
		{"iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.88.0.1", "--dport", "80", "-j", "REDIRECT", "--to-ports", "15001"},
	} {
		if out, err := ns.Exec(ctx, args[0], args[1:]...); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	l, err := ns.Listen("tcp4", ":15001")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c, err := ns.Dial(ctx, "tcp4", "10.88.0.1:80")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tc := s.(*net.TCPConn)
	b.ReportAllocs()
	for b.Loop() {
		if ap, err := capture.OriginalDst(tc); err != nil || ap.Port() != 80 {
			b.Fatal(ap, err)
		}
	}
}
