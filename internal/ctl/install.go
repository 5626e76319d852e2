package ctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/mast-mesh/mast/internal/kube/install"
)

// installFlags are the flags `manifest generate`, `install` and `uninstall`
// share.
type installFlags struct {
	opts install.Options
	kube kubeFlags
}

func (f *installFlags) register(c *command, cluster bool) {
	c.Func("set", "a Helm value KEY=VALUE (repeatable; the chart's values.yaml lists the keys)", func(v string) error {
		f.opts.Set = append(f.opts.Set, v)
		return nil
	})
	c.Func("f", "a Helm values file (repeatable)", func(v string) error {
		f.opts.ValuesFiles = append(f.opts.ValuesFiles, v)
		return nil
	})
	c.StringVar(&f.opts.Namespace, "n", "istio-system", "mastd's namespace")
	c.StringVar(&f.opts.Namespace, "namespace", "istio-system", "same as -n")
	if cluster {
		f.kube.register(c)
	}
}

func (f *installFlags) render() ([]install.Object, error) {
	c, err := install.LoadChart()
	if err != nil {
		return nil, err
	}
	return install.Render(c, f.opts)
}

func (f *installFlags) client() (*install.Client, error) {
	rc, err := f.kube.restConfig()
	if err != nil {
		return nil, err
	}
	return install.NewClient(rc)
}

// Manifest runs `mast manifest generate`: it prints the objects `mast
// install` would apply.
func Manifest(args []string, stdout, stderr io.Writer) int {
	help := len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help")
	if !help && (len(args) == 0 || args[0] != "generate") {
		fmt.Fprintln(stderr, "mast manifest: want `mast manifest generate [--set KEY=VALUE]... [-f VALUES]... [-n NAMESPACE]`")
		return ExitUsage
	}
	if !help {
		args = args[1:]
	}
	var f installFlags
	c := newCommand("manifest generate", "[--set KEY=VALUE]... [-f VALUES]... [-n NAMESPACE]",
		"Prints Mast's installation for Kubernetes (Istio's CRDs, mastd's Deployment, Service, ServiceAccount\n"+
			"and RBAC, the webhook configurations and the injection values), rendered from the Helm chart in\n"+
			"deploy/helm/mast with Helm's engine: `helm template` with the same --set gives the same objects.",
		"mast manifest generate | kubectl apply --server-side -f -",
		"mast manifest generate --set mastd.replicas=2 --set sidecarInjector.holdApplicationUntilProxyStarts=true")
	f.register(c, false)
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	objs, err := f.render()
	if err != nil {
		fmt.Fprintf(stderr, "mast manifest generate: %v\n", err)
		return ExitFailure
	}
	out, err := install.Manifest(objs)
	if err != nil {
		fmt.Fprintf(stderr, "mast manifest generate: %v\n", err)
		return ExitFailure
	}
	stdout.Write(out)
	return ExitOK
}

// Install runs `mast install`: server-side apply of the rendered objects.
func Install(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f installFlags
	var dryRun string
	c := newCommand("install", "[--set KEY=VALUE]... [-f VALUES]... [-n NAMESPACE] [--dry-run=server] [--kubeconfig FILE]",
		"Installs Mast into the cluster with server-side apply (field manager mast-install): the same objects\n"+
			"as `mast manifest generate`. Running it again with the same values changes nothing; with other\n"+
			"values it updates what changed. --dry-run=server has the API server validate and admit everything\n"+
			"without storing it.",
		"mast install",
		"mast install --set mastd.replicas=2 --dry-run=server")
	f.register(c, true)
	c.StringVar(&dryRun, "dry-run", "none", `"server" to validate on the API server without storing, "none" to apply`)
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if dryRun != "none" && dryRun != "server" {
		return c.usageError(stderr, "--dry-run %q: want none or server", dryRun)
	}
	objs, err := f.render()
	if err != nil {
		fmt.Fprintf(stderr, "mast install: %v\n", err)
		return ExitFailure
	}
	cl, err := f.client()
	if err != nil {
		fmt.Fprintf(stderr, "mast install: %v\n", err)
		return ExitFailure
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := cl.Apply(ctx, objs, dryRun == "server", stdout); err != nil {
		fmt.Fprintf(stderr, "mast install: %v\n", err)
		return ExitFailure
	}
	if dryRun == "none" {
		done := c.progress.step("Waiting for the API server to establish Istio's custom resource definitions")
		err := cl.WaitEstablished(ctx, objs)
		done()
		if err != nil {
			fmt.Fprintf(stderr, "mast install: %v\n", err)
			return ExitFailure
		}
	}
	return ExitOK
}

// Uninstall runs `mast uninstall`: it deletes what `mast install` applied.
func Uninstall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f installFlags
	var purge bool
	c := newCommand("uninstall", "[-n NAMESPACE] [--purge] [--kubeconfig FILE]",
		"Deletes what `mast install` applied. Istio's CRDs (and so every Istio resource) and the namespace\n"+
			"stay unless --purge is given.",
		"mast uninstall", "mast uninstall --purge")
	f.register(c, true)
	c.BoolVar(&purge, "purge", false, "also delete the CRDs, every Istio resource with them, and the namespace")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	objs, err := f.render()
	if err != nil {
		fmt.Fprintf(stderr, "mast uninstall: %v\n", err)
		return ExitFailure
	}
	cl, err := f.client()
	if err != nil {
		fmt.Fprintf(stderr, "mast uninstall: %v\n", err)
		return ExitFailure
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := cl.Delete(ctx, objs, purge, stdout); err != nil {
		fmt.Fprintf(stderr, "mast uninstall: %v\n", err)
		return ExitFailure
	}
	return ExitOK
}
