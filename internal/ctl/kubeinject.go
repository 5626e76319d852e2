package ctl

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/mast-mesh/mast/internal/inject"
)

// KubeInject runs `mast kube-inject -f FILE`: it adds the sidecar to every
// pod and pod template in Kubernetes manifests offline, exactly as mastd's
// injection webhook does, and prints the result (Istio's istioctl
// kube-inject).
func KubeInject(args []string, stdout, stderr io.Writer) int {
	var file, output, values, namespace string
	c := newCommand("kube-inject", "-f FILE [-o FILE] [--valuesFile FILE] [-n NAMESPACE]",
		"Adds Mast's sidecar (init container `mast-proxy iptables`, the istio-proxy container, probes rewritten\n"+
			"to the sidecar) to every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob in\n"+
			"the manifests, as mastd's injection webhook would, and prints them; other objects pass unchanged.\n"+
			"Pods annotated sidecar.istio.io/inject: \"false\" are left alone. Warnings go to stderr.",
		"mast kube-inject -f samples/bookinfo/platform/kube/bookinfo.yaml | kubectl apply -f -",
		"mast kube-inject -f deployment.yaml --valuesFile values.yaml -o injected.yaml")
	c.StringVar(&file, "f", "", `manifest file, or "-" for standard input`)
	c.StringVar(&file, "filename", "", "same as -f")
	c.StringVar(&output, "o", "", "write here instead of standard output")
	c.StringVar(&output, "output", "", "same as -o")
	c.StringVar(&values, "valuesFile", "", "injection values (YAML; the values of the istio-sidecar-injector ConfigMap, as `mast install` writes them)")
	c.StringVar(&namespace, "n", "default", "namespace of objects that name none")
	c.StringVar(&namespace, "namespace", "default", "same as -n")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if file == "" {
		return c.usageError(stderr, "-f FILE is required")
	}
	cfg := inject.DefaultConfig()
	if values != "" {
		data, err := os.ReadFile(values)
		if err != nil {
			fmt.Fprintf(stderr, "mast kube-inject: %v\n", err)
			return ExitFailure
		}
		if cfg, err = inject.ParseConfig(data); err != nil {
			fmt.Fprintf(stderr, "mast kube-inject: %s: %v\n", values, err)
			return ExitFailure
		}
	}
	var in io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			fmt.Fprintf(stderr, "mast kube-inject: %v\n", err)
			return ExitFailure
		}
		defer f.Close()
		in = f
	}
	var out bytes.Buffer
	warns, err := inject.Manifest(&cfg, namespace, in, &out)
	for _, w := range warns {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mast kube-inject: %s: %v\n", file, err)
		return ExitFailure
	}
	if output != "" {
		if err := os.WriteFile(output, out.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "mast kube-inject: %v\n", err)
			return ExitFailure
		}
		return ExitOK
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return ExitFailure
	}
	return ExitOK
}
