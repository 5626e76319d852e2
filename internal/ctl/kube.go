package ctl

import (
	"context"
	"fmt"
	"os"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/kubestore"
)

// kubeFlags name a Kubernetes cluster (--kubeconfig, --context), as kubectl
// and istioctl do.
type kubeFlags struct {
	kubeconfig  string
	kubecontext string
}

func (f *kubeFlags) register(c *command) {
	c.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	c.StringVar(&f.kubecontext, "context", "", "kubeconfig context")
}

// named says the command line names a cluster.
func (f *kubeFlags) named() bool { return f.kubeconfig != "" || f.kubecontext != "" }

// exists says a kubeconfig is there to use without flags: $KUBECONFIG or
// ~/.kube/config names a file.
func (f *kubeFlags) exists() bool {
	for _, p := range clientcmd.NewDefaultClientConfigLoadingRules().Precedence {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// restConfig loads the client configuration the flags name.
func (f *kubeFlags) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f.kubeconfig != "" {
		rules.ExplicitPath = f.kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.kubecontext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return rc, nil
}

// clusterConfig is the Istio configuration of a cluster as read once.
type clusterConfig struct {
	objects []*kubestore.Object // every resource, with its problems and status
	snap    *config.Snapshot    // the valid ones
}

// readConfig lists every Istio kind Mast reads through the API server and
// decodes the resources as mastd's CRD store does. Kinds whose CRD is not
// installed are skipped; if none is, it says so.
func readConfig(ctx context.Context, rc *rest.Config) (*clusterConfig, error) {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	out := &clusterConfig{}
	var all []config.Resource
	served := 0
	for _, k := range config.Kinds() {
		list, err := dyn.Resource(kubestore.GVR(k)).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", kubestore.Plural(k), err)
		}
		served++
		for i := range list.Items {
			obj, rs := kubestore.Decode(k, &list.Items[i])
			out.objects = append(out.objects, obj)
			all = append(all, rs...)
		}
	}
	if served == 0 {
		return nil, fmt.Errorf("%s serves none of Istio's CRDs (mast install applies them)", rc.Host)
	}
	out.snap = config.NewSnapshot(all)
	return out, nil
}
