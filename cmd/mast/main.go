// Command mast is Mast's command-line tool (Istio's istioctl): it validates
// configuration, runs a local mesh, and inspects a running one.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mast-mesh/mast/internal/ctl"
)

// command is one subcommand: its name, a one-line summary and its entry point,
// which returns the process exit code.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is the subcommand table. Add a subcommand with one line here.
func commands() []command {
	return []command{
		{"validate", "check configuration files (Istio YAML/JSON) and report errors and warnings",
			func(_ context.Context, args []string, stdout, stderr io.Writer) int {
				return ctl.Validate(args, stdout, stderr)
			}},
		{"up", "run a whole local mesh (mastd, sidecars, ingress gateway, Bookinfo) on this machine", ctl.Up},
		{"apply", "apply configuration files to the running local mesh, replacing by kind, namespace and name",
			func(_ context.Context, args []string, stdout, stderr io.Writer) int {
				return ctl.Apply(args, stdout, stderr)
			}},
		{"delete", "delete the resources named in configuration files from the running local mesh",
			func(_ context.Context, args []string, stdout, stderr io.Writer) int {
				return ctl.Delete(args, stdout, stderr)
			}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "__run" {
		// `mast up` runs the mesh's programs as children of this same binary.
		return ctl.RunProgram(args[1:], stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mast: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mast COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}
