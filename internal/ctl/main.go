package ctl

import (
	"context"
	"fmt"
	"io"
	"slices"
)

// verb is one top-level command of mast.
type verb struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// verbs is mast's command table. Add a command with one line here.
func verbs() []verb {
	plain := func(f func(args []string, stdout, stderr io.Writer) int) func(context.Context, []string, io.Writer, io.Writer) int {
		return func(_ context.Context, args []string, stdout, stderr io.Writer) int { return f(args, stdout, stderr) }
	}
	return []verb{
		{"up", "run a whole local mesh (mastd, sidecars, ingress gateway, Bookinfo) on this machine", Up},
		{"apply", "apply configuration files to the running local mesh, replacing by kind, namespace and name", plain(Apply)},
		{"get", "list Istio resources with their status: Reconciled, and Istio's analysis messages", plain(Get)},
		{"delete", "delete the resources named in configuration files from the running local mesh", plain(Delete)},
		{"reset", "return the local mesh's configuration to Bookinfo's defaults", plain(Reset)},
		{"analyze", "analyze configuration (files, or the running mesh) and report Istio's messages", plain(Analyze)},
		{"proxy-status", "show whether every proxy has acknowledged the configuration mastd sent it", plain(ProxyStatus)},
		{"proxy-config", "show a proxy's clusters, listeners, routes, endpoints, secrets and bootstrap", plain(ProxyConfig)},
		{"ca", "revoke a workload identity at mastd's CA (ca revoke ID) or list revoked ones (ca revoked)", CA},
		{"why", "follow a request through the mesh and name the hop, cause and resource of its failure", plain(Why)},
		{"describe", "describe a workload (pod) or service: the routing, TLS, mTLS and policies that apply, with warnings", plain(Describe)},
		{"x", "experimental commands: x authz check PROXY (the AuthorizationPolicies in force at a proxy)", plain(X)},
		{"bug-report", "write a tarball of the mesh's config dumps, logs, sync state and analysis, secrets removed", plain(BugReport)},
		{"dashboard", "open the built-in dashboard (service graph, signals, config, proxies, policy), Prometheus or Jaeger", plain(Dashboard)},
		{"version", "print the version of mast and of the running mesh", plain(Version)},
		{"completion", "print a shell completion script (bash, zsh or fish)", plain(Completion)},
		{"manifest", "print Mast's Kubernetes installation (manifest generate)", plain(Manifest)},
		{"install", "install Mast into a Kubernetes cluster (server-side apply)", Install},
		{"uninstall", "remove Mast from a Kubernetes cluster", Uninstall},
		{"kube-inject", "add the sidecar to Kubernetes manifests offline, as mastd's injection webhook does", plain(KubeInject)},
		{"validate", "check configuration files (Istio YAML/JSON) and report errors and warnings", plain(Validate)},
	}
}

// Main runs mast with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "--help", "-help":
		usage(stdout)
		return ExitOK
	case "help":
		if len(args) == 1 {
			usage(stdout)
			return ExitOK
		}
		// `mast help proxy-config cluster` is `mast proxy-config cluster --help`.
		return Main(ctx, append(slices.Clone(args[1:]), "--help"), stdout, stderr)
	case "__run":
		// `mast up` runs the mesh's programs as children of this same binary.
		return RunProgram(args[1:], stderr)
	}
	for _, v := range verbs() {
		if v.name == args[0] {
			return v.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mast: unknown command %q\n\n", args[0])
	usage(stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Mast's command-line tool: run a local mesh, check configuration, and inspect a running mesh.")
	fmt.Fprintln(w, "\nUsage: mast COMMAND [flags]\n\nCommands:")
	for _, v := range verbs() {
		fmt.Fprintf(w, "  %-14s %s\n", v.name, v.summary)
	}
	fmt.Fprintln(w, "\nRun `mast help COMMAND` or `mast COMMAND --help` for a command's flags and examples.")
	fmt.Fprintln(w, "Exit codes: 0 success, 1 failure, 2 usage error, 3 a local mesh is already running (up),")
	fmt.Fprintln(w, "79 analysis found errors (analyze).")
}
