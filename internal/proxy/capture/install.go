package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// Runner runs the program name with args, writing stdin (if not nil) to its
// standard input, and returns its standard output. The error of a failed run
// should say what ran and what it printed on standard error.
type Runner func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

// Exec is the Runner that runs programs on this machine with os/exec. Its
// errors wrap the exec error (errors.Is(err, exec.ErrNotFound) works).
func Exec(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// Backends WithBackend accepts: the system's default iptables, or its legacy
// (x_tables) or nf_tables variant explicitly.
var Backends = []string{"", "legacy", "nft"}

// WithBackend returns a Runner that runs the given backend's variant of the
// iptables programs: with "legacy", "iptables-restore" runs as
// "iptables-legacy-restore" and "ip6tables" as "ip6tables-legacy". Other
// programs run unchanged. The empty backend returns run itself.
func WithBackend(run Runner, backend string) (Runner, error) {
	if !slices.Contains(Backends, backend) {
		return nil, fmt.Errorf("capture: backend %q: want %q, %q or empty for the system default", backend, "legacy", "nft")
	}
	if backend == "" {
		return run, nil
	}
	return func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		for _, base := range []string{"iptables", "ip6tables"} {
			if rest, ok := strings.CutPrefix(name, base); ok && (rest == "" || rest == "-save" || rest == "-restore") {
				name = base + "-" + backend + rest
				break
			}
		}
		return run(ctx, stdin, name, args...)
	}, nil
}

// restoreArgs makes iptables-restore add to the tables instead of replacing
// them, and wait for the xtables lock rather than fail when another program
// holds it.
var restoreArgs = []string{"--noflush", "--wait", "5"}

// Install installs cfg's rules: it first removes any ISTIO_* chains and the
// jumps to them (so Install can be run again with a new configuration), then
// applies each family's rules in one iptables-restore transaction. If a
// later step fails, what was installed is removed again.
func Install(ctx context.Context, cfg Config, run Runner) error {
	rules, err := Rules(cfg)
	if err != nil {
		return err
	}
	fams := []Family{IPv4}
	if cfg.IPv6 {
		fams = append(fams, IPv6)
	}
	for _, f := range fams {
		if err := uninstallFamily(ctx, run, f); err != nil {
			return fmt.Errorf("capture: removing earlier rules: %w", err)
		}
	}
	if cfg.IPv6 {
		// The inbound passthrough's source address, which IPv4 has for free
		// in 127.0.0.0/8 (istio-iptables does the same).
		if _, err := run(ctx, nil, "ip", "-6", "addr", "add", "::6/128", "dev", "lo"); err != nil && !strings.Contains(err.Error(), "File exists") {
			return fmt.Errorf("capture: adding ::6 to lo: %w", err)
		}
	}
	for i, f := range fams {
		if _, err := run(ctx, RestoreInput(rules, f), f.Command()+"-restore", restoreArgs...); err != nil {
			err = fmt.Errorf("capture: installing %s rules: %w", f.Command(), err)
			for _, g := range fams[:i] {
				if uerr := uninstallFamily(ctx, run, g); uerr != nil {
					err = errors.Join(err, fmt.Errorf("capture: rolling back: %w", uerr))
				}
			}
			return err
		}
	}
	return nil
}

// Uninstall removes every chain whose name starts with ISTIO_ and every rule
// in other chains that jumps to one, for IPv4 and IPv6, in all tables, one
// transaction per family. Nothing else is touched. It is a no-op when
// nothing is installed, and a missing ip6tables program is not an error.
func Uninstall(ctx context.Context, run Runner) error {
	var errs []error
	for _, f := range []Family{IPv4, IPv6} {
		err := uninstallFamily(ctx, run, f)
		if f == IPv6 && errors.Is(err, exec.ErrNotFound) {
			continue
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func uninstallFamily(ctx context.Context, run Runner, f Family) error {
	save, err := run(ctx, nil, f.Command()+"-save")
	if err != nil {
		return fmt.Errorf("reading %s rules: %w", f.Command(), err)
	}
	in := CleanupInput(save)
	if len(in) == 0 {
		return nil
	}
	if _, err := run(ctx, in, f.Command()+"-restore", restoreArgs...); err != nil {
		return fmt.Errorf("removing %s rules: %w", f.Command(), err)
	}
	return nil
}

// CleanupInput reads iptables-save output and returns the iptables-restore
// --noflush input that removes Mast's rules: for each table, delete the
// rules of other chains that jump (-j or -g) to an ISTIO_* chain, then flush
// and delete the ISTIO_* chains. It returns nil when there is nothing to
// remove. Lines it does not understand are ignored.
func CleanupInput(save []byte) []byte {
	var (
		b      bytes.Buffer
		table  string
		chains []string
		jumps  []string
	)
	flushTable := func() {
		if table == "" || len(chains)+len(jumps) == 0 {
			return
		}
		b.WriteString("*" + table + "\n")
		for _, j := range jumps {
			b.WriteString("-D " + j + "\n")
		}
		for _, c := range chains {
			b.WriteString("-F " + c + "\n")
		}
		for _, c := range chains {
			b.WriteString("-X " + c + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	for line := range strings.SplitSeq(string(save), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			flushTable()
			table, chains, jumps = strings.TrimSpace(line[1:]), nil, nil
		case line == "COMMIT":
			flushTable()
			table, chains, jumps = "", nil, nil
		case strings.HasPrefix(line, ":"+ChainPrefix):
			name, _, _ := strings.Cut(line[1:], " ")
			if !slices.Contains(chains, name) {
				chains = append(chains, name)
			}
		case strings.HasPrefix(line, "-A "):
			spec := line[len("-A "):]
			chain, _, _ := strings.Cut(spec, " ")
			if !strings.HasPrefix(chain, ChainPrefix) && jumpsToOurs(spec) {
				jumps = append(jumps, spec)
			}
		}
	}
	flushTable()
	if b.Len() == 0 {
		return nil
	}
	return b.Bytes()
}

// jumpsToOurs reports whether a rule spec's target is an ISTIO_* chain.
// Quoted strings (comments) are skipped.
func jumpsToOurs(spec string) bool {
	toks := tokens(spec)
	for i := 0; i+1 < len(toks); i++ {
		switch toks[i] {
		case "-j", "--jump", "-g", "--goto":
			if strings.HasPrefix(toks[i+1], ChainPrefix) {
				return true
			}
		}
	}
	return false
}

// tokens splits an iptables-save rule into words; a double-quoted string
// (with \" escapes) is one word and is replaced by "".
func tokens(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		switch {
		case s[i] == ' ' || s[i] == '\t':
			i++
		case s[i] == '"':
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			i++
			out = append(out, `""`)
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out
}
