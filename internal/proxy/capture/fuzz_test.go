package capture

import (
	"io"
	"net/netip"
	"strings"
	"testing"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// FuzzParseArgs feeds the command line parser NUL-separated arguments. A
// command line it accepts must produce rules, each of whose arguments is one
// shell word without quoting.
func FuzzParseArgs(f *testing.F) {
	for _, seed := range []string{
		"",
		"-b\x009080,9090",
		"-b\x00*\x00-d\x0015021,80",
		"-i\x0010.0.0.0/8, fd00::/8\x00-x\x0010.1.0.0/16\x00--ipv6",
		"-i\x00*,10.0.0.0/8",
		"-u\x001337,0\x00-g\x00",
		"-p\x0015006",
		"-o\x0022\x00-q\x00443\x00-c\x00eth1,veth+",
		"-x\x0010.0.0.1",
		"--inbound-tunnel-port\x000\x00-z\x0016006",
		"-i\x00::ffff:10.0.0.0/104\x00--ipv6",
		"-b\x00,,, ,80",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		if joined == "" {
			args = nil
		}
		cfg, _, err := ParseArgs(args, io.Discard)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		rules, err := Rules(cfg)
		if err != nil {
			t.Fatalf("ParseArgs accepted %q but Rules failed: %v", args, err)
		}
		for _, r := range rules {
			if r.Table != "nat" || (r.Op != OpAppend && r.Op != OpNewChain) {
				t.Fatalf("unexpected rule %s", r)
			}
			for _, a := range r.Args {
				if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`;") {
					t.Fatalf("argument %q of %s needs quoting", a, r)
				}
			}
		}
		lines := strings.Count(string(RestoreInput(rules, IPv4)), "\n") + strings.Count(string(RestoreInput(rules, IPv6)), "\n")
		families := 1
		if cfg.IPv6 {
			families = 2
		}
		if want := len(rules) + 2*families; lines != want {
			t.Fatalf("restore input has %d lines for %d rules", lines, len(rules))
		}
	})
}

// FuzzCleanupInput checks that whatever iptables-save prints, the cleanup
// only deletes rules, and only flushes and deletes ISTIO_* chains.
func FuzzCleanupInput(f *testing.F) {
	f.Add(saveWithMast)
	f.Add("*nat\n:ISTIO_OUTPUT - [0:0]\n-A OUTPUT -j ISTIO_OUTPUT\n")
	f.Add("*nat\n-A OUTPUT -m comment --comment \"\\\" -j ISTIO_X\" -j ACCEPT\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, save string) {
		for line := range strings.SplitSeq(string(CleanupInput([]byte(save))), "\n") {
			switch {
			case line == "", line == "COMMIT", strings.HasPrefix(line, "*"):
			case strings.HasPrefix(line, "-D "):
				if !jumpsToOurs(line) {
					t.Fatalf("deletes a rule that does not jump to %s*: %q", ChainPrefix, line)
				}
			case strings.HasPrefix(line, "-F "+ChainPrefix), strings.HasPrefix(line, "-X "+ChainPrefix):
			default:
				t.Fatalf("unexpected cleanup line %q", line)
			}
		}
	})
}
