package controlplane

import (
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/consul"
	"github.com/mast-mesh/mast/internal/registry/eureka"
)

// registryFlags is the command line of the registries besides
// ServiceEntries: --registry names them in priority order.
type registryFlags struct {
	names  []string
	consul consul.Config
	kube   kubeFlags
	eureka eureka.Config
	// kubeConfig is the cluster connection, made from kube when
	// "kubernetes" is named.
	kubeConfig *KubeConfig
}

func (f *registryFlags) flags(fs *flag.FlagSet) {
	fs.Func("registry", "a service registry besides ServiceEntries: kubernetes, consul or eureka (repeatable or comma-separated; a hostname several registries have belongs to ServiceEntries first, then to the first registry named)", func(v string) error {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				f.names = append(f.names, n)
			}
		}
		return nil
	})
	f.kube.flags(fs)
	c := &f.consul
	fs.StringVar(&c.Addr, "consul-addr", "127.0.0.1:8500", "Consul's HTTP API (host:port, http://, https:// or unix:// URL), with --registry consul")
	fs.StringVar(&c.TokenFile, "consul-token-file", "", "file holding the Consul ACL token (service:read, node:read); CONSUL_HTTP_TOKEN is read too")
	fs.StringVar(&c.CAFile, "consul-ca-file", "", "CA certificates (PEM) that verify Consul's HTTPS API")
	fs.StringVar(&c.CertFile, "consul-cert-file", "", "client certificate (PEM) for Consul's HTTPS API")
	fs.StringVar(&c.KeyFile, "consul-key-file", "", "key (PEM) of --consul-cert-file")
	fs.StringVar(&c.TLSServerName, "consul-tls-server-name", "", "name to verify in Consul's certificate (default: the address's host)")
	fs.StringVar(&c.Datacenter, "consul-datacenter", "", "Consul datacenter to read (default: the agent's)")
	fs.StringVar(&c.Namespace, "consul-namespace", "", "Consul Enterprise namespace to read")
	fs.StringVar(&c.Partition, "consul-partition", "", "Consul Enterprise admin partition to read")
	fs.BoolVar(&c.AllowWarning, "consul-allow-warning", false, "send traffic to instances whose worst health check is warning (default: passing only)")
	fs.DurationVar(&c.WaitTime, "consul-wait", 0, "longest wait of a Consul blocking query (default 2m)")
	fs.IntVar(&c.MaxFetches, "consul-max-fetches", 0, "services fetched from Consul at once after a change (default 16; mastd holds at most this many plus 2 connections)")
	e := &f.eureka
	fs.StringVar(&e.URL, "eureka-url", "http://127.0.0.1:8080/eureka/v2", "Eureka server's REST API v2 base URL, with --registry eureka")
	fs.BoolVar(&e.XML, "eureka-xml", false, "fetch the Eureka registry as XML instead of JSON")
	fs.DurationVar(&e.Interval, "eureka-interval", 30*time.Second, "period of Eureka registry fetches (deltas after the first; Eureka clients' registryFetchIntervalSeconds)")
}

// build makes the registries in the order they were named.
func (f *registryFlags) build(trustDomain, domainSuffix string, log *slog.Logger) ([]registry.Watcher, error) {
	var out []registry.Watcher
	seen := map[string]bool{}
	for _, n := range f.names {
		if seen[n] {
			return nil, fmt.Errorf("--registry %s: named twice", n)
		}
		seen[n] = true
		switch n {
		case "kubernetes":
			kc, err := f.kube.config()
			if err != nil {
				return nil, err
			}
			f.kubeConfig = kc
			r, err := newKubeRegistry(kc, trustDomain, domainSuffix, log.With("component", "registry", "registry", "kubernetes"))
			if err != nil {
				return nil, fmt.Errorf("--registry kubernetes: %w", err)
			}
			out = append(out, r)
		case "consul":
			c := f.consul
			c.TrustDomain, c.Logger = trustDomain, log.With("component", "registry", "registry", "consul")
			r, err := consul.New(c)
			if err != nil {
				return nil, fmt.Errorf("--registry consul: %w", err)
			}
			out = append(out, r)
		case "eureka":
			e := f.eureka
			e.TrustDomain, e.Logger = trustDomain, log.With("component", "registry", "registry", "eureka")
			r, err := eureka.New(e)
			if err != nil {
				return nil, fmt.Errorf("--registry eureka: %w", err)
			}
			out = append(out, r)
		default:
			return nil, fmt.Errorf("--registry %q: unknown (kubernetes, consul, eureka)", n)
		}
	}
	return out, nil
}
