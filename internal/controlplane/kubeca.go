package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	networkingbeta "istio.io/api/networking/v1beta1"
	"k8s.io/client-go/kubernetes"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/inject"
	"github.com/mast-mesh/mast/internal/kube/identity"
	"github.com/mast-mesh/mast/internal/kube/leader"
	"github.com/mast-mesh/mast/internal/kube/webhook"
)

// WebhookConfig serves the admission webhooks (validation, sidecar
// injection) over TLS from the mesh CA (Istio's 15017).
type WebhookConfig struct {
	// Addr is the webhooks' listen address; "" serves none.
	Addr string
	// InjectValues is the injection values file (the istio-sidecar-injector
	// ConfigMap's values.yaml); "" uses inject.DefaultConfig.
	InjectValues string
	// ValidatingConfigs and InjectorConfigs name the webhook configurations
	// whose caBundle the leader keeps equal to the CA's trust bundle (on
	// Kubernetes); nil means the chart's mast-validator-NAMESPACE and
	// mast-sidecar-injector-NAMESPACE.
	ValidatingConfigs, InjectorConfigs []string
}

// rootCertLease elects the replica that writes istio-ca-root-cert.
const rootCertLease = "mast-namespace-controller"

// kubeCA makes the CA Kubernetes-aware: its state in the istio-ca-secret
// Secret of mastd's namespace, and service-account tokens (audience
// istio-ca) checked with TokenReview. A plug-in CA in pluginDir (Istio's
// cacerts files) signs instead of a self-signed root when present.
func kubeCA(cfg Config, caCfg *ca.Config) (kubernetes.Interface, error) {
	if d := cfg.PluginCADir; d != "" {
		if _, err := os.Stat(filepath.Join(d, "ca-key.pem")); err == nil {
			caCfg.PluginCert = filepath.Join(d, "ca-cert.pem")
			caCfg.PluginKey = filepath.Join(d, "ca-key.pem")
			caCfg.PluginChain = filepath.Join(d, "cert-chain.pem")
			caCfg.PluginRoot = filepath.Join(d, "root-cert.pem")
		}
	}
	if cfg.Kube == nil {
		return nil, nil
	}
	client, err := kubernetes.NewForConfig(cfg.Kube.Rest)
	if err != nil {
		return nil, fmt.Errorf("ca: kubernetes client: %w", err)
	}
	td, err := spiffeid.TrustDomainFromString(cfg.Mesh.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	caCfg.Store = &identity.SecretStore{Client: client, Namespace: cfg.Kube.Namespace}
	caCfg.Authenticators = append(caCfg.Authenticators, &identity.TokenReviewer{Client: client, TrustDomain: td})
	return client, nil
}

// startKube starts the webhooks and, on Kubernetes, the leader-elected
// istio-ca-root-cert publisher and webhook caBundle patcher, through run.
func startKube(ctx context.Context, cfg Config, authority *ca.CA, client kubernetes.Interface, sources *configSources, log *slog.Logger, run func(string, func() error)) error {
	if cfg.Webhook.Addr != "" {
		if authority == nil {
			return fmt.Errorf("--webhook-addr needs the CA (--ca-dir) for its certificate")
		}
		icfg := inject.DefaultConfig()
		if f := cfg.Webhook.InjectValues; f != "" {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("injection values: %w", err)
			}
			if icfg, err = inject.ParseConfig(data); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
		ns := "istio-system"
		if cfg.Kube != nil {
			ns = cfg.Kube.Namespace
		}
		tlsCfg, err := authority.ServerTLSConfig("istiod."+ns+".svc", "istiod."+ns+".svc.cluster.local", "localhost", "127.0.0.1")
		if err != nil {
			return fmt.Errorf("webhook certificate: %w", err)
		}
		wlog := log.With("component", "webhook")
		icfg.RootNamespace = cfg.Mesh.RootNamespace
		handler := webhook.NewHandler(icfg, wlog)
		handler.SetProxyConfigs(func() []inject.ProxyConfigRule {
			var out []inject.ProxyConfigRule
			for _, r := range sources.list(config.ProxyConfig) {
				if spec, ok := r.Spec.(*networkingbeta.ProxyConfig); ok {
					out = append(out, inject.ProxyConfigRule{Namespace: r.Namespace, Name: r.Name, Spec: spec})
				}
			}
			return out
		})
		addr, done, err := webhook.Serve(ctx, cfg.Webhook.Addr, tlsCfg, handler, wlog)
		if err != nil {
			return err
		}
		wlog.Info("admission webhooks serving", "addr", addr.String())
		run("webhooks", func() error { return <-done })
	}
	if client != nil && authority != nil {
		// Replicas share the CA through istio-ca-secret: take what another
		// replica stored (a rotation, a revocation, a token binding).
		store := &identity.SecretStore{Client: client, Namespace: cfg.Kube.Namespace}
		calog := log.With("component", "ca")
		run("ca state watcher", func() error {
			return store.Watch(ctx, func() {
				if _, err := authority.Reload(); err != nil {
					calog.Warn("reloading the CA state another replica stored", "error", err)
				}
			})
		})
		pub := &identity.RootCertPublisher{Client: client, Bundle: authority.TrustBundlePEM, Logger: log.With("component", "rootcert")}
		var patcher *webhook.CABundlePatcher
		if cfg.Webhook.Addr != "" {
			patcher = &webhook.CABundlePatcher{Client: client, Bundle: authority.TrustBundlePEM, Logger: log.With("component", "webhook-cabundle"),
				Validating: cfg.Webhook.ValidatingConfigs, Mutating: cfg.Webhook.InjectorConfigs}
			if patcher.Validating == nil {
				patcher.Validating = []string{"mast-validator-" + cfg.Kube.Namespace}
			}
			if patcher.Mutating == nil {
				patcher.Mutating = []string{"mast-sidecar-injector-" + cfg.Kube.Namespace}
			}
		}
		lease := cfg.Kube.LeaseDuration
		if lease <= 0 {
			lease = 15 * time.Second
		}
		run("root certificate publisher", func() error {
			return leader.Run(ctx, leader.Config{
				Client: client, Namespace: cfg.Kube.Namespace, Name: rootCertLease, Identity: cfg.Kube.Identity,
				LeaseDuration: lease, RenewDeadline: lease * 2 / 3, RetryPeriod: max(lease/8, 100*time.Millisecond),
				Logger: log.With("component", "leader"),
			}, func(ctx context.Context) {
				done := make(chan struct{})
				if patcher != nil {
					go func() {
						defer close(done)
						if err := patcher.Run(ctx); err != nil {
							log.Error("webhook caBundle patcher", "error", err)
						}
					}()
				} else {
					close(done)
				}
				if err := pub.Run(ctx); err != nil {
					log.Error("root certificate publisher", "error", err)
				}
				<-done
			})
		})
	}
	return nil
}
