package controlplane

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/kubestore"
	"github.com/mast-mesh/mast/internal/kube/leader"
	"github.com/mast-mesh/mast/internal/kube/status"
	"github.com/mast-mesh/mast/internal/pilot/workloadhealth"
	kuberegistry "github.com/mast-mesh/mast/internal/registry/kube"
)

// KubeConfig connects mastd to a Kubernetes API server (--registry
// kubernetes): Services and endpoints come from the cluster, Istio
// configuration from its custom resources (besides --config files), and the
// elected replica writes their status.
type KubeConfig struct {
	Rest      *rest.Config
	Namespace string // mastd's namespace, where the status Lease lives
	Identity  string // this replica's name in the Lease
	// LeaseDuration is the Lease's duration (renewal at 2/3 of it); 0: 15s.
	LeaseDuration time.Duration
	// Leading are writers besides the status writer that must run on one
	// replica only (root-cert ConfigMaps, webhook caBundle patching): each
	// runs, in its own goroutine, while this replica holds the Lease, with a
	// context cancelled when it loses it.
	Leading []func(ctx context.Context)
	// WorkloadEntryGrace is how long an auto-registered WorkloadEntry
	// outlives its proxy's last stream (10s when zero).
	WorkloadEntryGrace time.Duration
}

// LeaseName is the Lease the status writers elect their leader with.
const LeaseName = "mast-status-leader"

type kubeFlags struct {
	kubeconfig, namespace, identity string
	lease, weGrace                  time.Duration
}

func (f *kubeFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster, with --registry kubernetes (default: in-cluster service account, else $KUBECONFIG)")
	fs.StringVar(&f.namespace, "kube-namespace", "istio-system", "mastd's namespace: the status writers' Lease lives there")
	fs.StringVar(&f.identity, "kube-identity", "", "this replica's name in leader election (default: $POD_NAME, else host name and pid)")
	fs.DurationVar(&f.weGrace, "workload-entry-grace-period", 10*time.Second, "how long a WorkloadEntry auto-registered from a WorkloadGroup outlives its proxy's disconnection (Istio's PILOT_WORKLOAD_ENTRY_GRACE_PERIOD)")
	fs.DurationVar(&f.lease, "kube-lease-duration", 15*time.Second, "duration of the status writers' Lease; a new leader takes over within it")
}

// config builds the connection: --kubeconfig, else in-cluster, else $KUBECONFIG.
func (f *kubeFlags) config() (*KubeConfig, error) {
	var rc *rest.Config
	var err error
	switch {
	case f.kubeconfig != "":
		rc, err = clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		rc, err = rest.InClusterConfig()
	case os.Getenv("KUBECONFIG") != "":
		rc, err = clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	default:
		err = errors.New("no cluster: give --kubeconfig, or run in a pod, or set KUBECONFIG")
	}
	if err != nil {
		return nil, fmt.Errorf("--registry kubernetes: %w", err)
	}
	rc.QPS, rc.Burst = 100, 200
	id := f.identity
	if id == "" {
		id = os.Getenv("POD_NAME")
	}
	if id == "" {
		host, _ := os.Hostname()
		id = host + "-" + strconv.Itoa(os.Getpid())
	}
	return &KubeConfig{Rest: rc, Namespace: f.namespace, Identity: id, LeaseDuration: f.lease, WorkloadEntryGrace: f.weGrace}, nil
}

// newKubeRegistry is the Kubernetes registry of --registry kubernetes.
func newKubeRegistry(kc *KubeConfig, trustDomain, domainSuffix string, log *slog.Logger) (*kuberegistry.Registry, error) {
	if kc == nil {
		return nil, errors.New("--registry kubernetes: no cluster configuration")
	}
	client, err := kubernetes.NewForConfig(kc.Rest)
	if err != nil {
		return nil, err
	}
	return kuberegistry.New(kuberegistry.Config{
		Client:  client,
		Options: kuberegistry.Options{TrustDomain: trustDomain, DomainSuffix: domainSuffix},
		Source:  kc.Rest.Host,
		Logger:  log,
	})
}

// kubeControl is the Kubernetes side of mastd: the CRD config store and the
// leader-elected status writer.
type kubeControl struct {
	cfg    *KubeConfig
	client kubernetes.Interface
	store  *kubestore.Store
	writer *status.Writer
	log    *slog.Logger
}

func newKubeControl(kc *KubeConfig, reg *kuberegistry.Registry, onConfig func(*config.Snapshot), log *slog.Logger) (*kubeControl, error) {
	client, err := kubernetes.NewForConfig(kc.Rest)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(kc.Rest)
	if err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(kc.Rest)
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery: %w", err)
	}
	st, err := kubestore.New(kubestore.Config{Dynamic: dyn, Discovery: disc, OnChange: onConfig, Logger: log.With("component", "galley-kube")})
	if err != nil {
		return nil, err
	}
	sc := status.Config{Dynamic: dyn, Store: st, Logger: log.With("component", "status")}
	if reg != nil {
		sc.Cluster = func() status.Cluster {
			in := reg.Input()
			return status.Cluster{Services: in.Services, Pods: in.Pods, Namespaces: in.Namespaces}
		}
	}
	return &kubeControl{cfg: kc, client: client, store: st, writer: status.New(sc), log: log}, nil
}

// run watches the CRDs and, while this replica leads, writes status.
func (k *kubeControl) run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		lease := k.cfg.LeaseDuration
		if lease <= 0 {
			lease = 15 * time.Second
		}
		err := leader.Run(ctx, leader.Config{
			Client: k.client, Namespace: k.cfg.Namespace, Name: LeaseName, Identity: k.cfg.Identity,
			LeaseDuration: lease, RenewDeadline: lease * 2 / 3, RetryPeriod: max(lease/8, 100*time.Millisecond),
			Logger: k.log.With("component", "leader"),
		}, func(ctx context.Context) {
			var lw sync.WaitGroup
			for _, f := range k.cfg.Leading {
				lw.Go(func() { f(ctx) })
			}
			if k.store.WaitSynced(ctx) {
				k.writer.Run(ctx)
			}
			lw.Wait()
		})
		if err != nil && ctx.Err() == nil {
			k.log.Error("leader election stopped", "err", err)
		}
	}()
	err := k.store.Run(ctx)
	wg.Wait()
	return err
}

// configSources merges the file store's snapshot with the CRD store's; a key
// both define is taken from the file. The merged snapshot is handed on
// without the WorkloadEntries that health leaves out (unhealthy workloads).
type configSources struct {
	mu         sync.Mutex
	file, kube *config.Snapshot
	all        *config.Snapshot // merged, before health
	health     *workloadhealth.Table
}

// list returns the merged snapshot's resources of kind k.
func (c *configSources) list(k config.Kind) []config.Resource {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []config.Resource
	seen := map[config.Key]bool{}
	for _, s := range []*config.Snapshot{c.file, c.kube} {
		if s == nil {
			continue
		}
		for _, r := range s.List(k) {
			if !seen[r.Key()] {
				seen[r.Key()] = true
				out = append(out, r)
			}
		}
	}
	return out
}

// update records one source's new snapshot (nil leaves it) and calls changed
// with the merged snapshot, serially, so that the last call sees the latest
// of both.
func (c *configSources) update(file, kube *config.Snapshot, changed func(*config.Snapshot)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if file != nil {
		c.file = file
	}
	if kube != nil {
		c.kube = kube
	}
	switch {
	case c.kube == nil:
		c.all = c.file
	case file != nil || kube != nil || c.all == nil:
		c.all = config.NewSnapshot(append(c.kube.All(), c.file.All()...))
	}
	snap := c.all
	if snap == nil {
		return // no source yet
	}
	if c.health != nil {
		snap, _ = c.health.Apply(snap)
	}
	changed(snap)
}

// merged returns the merged snapshot as the sources gave it (nil before the
// first update).
func (c *configSources) merged() *config.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all
}
