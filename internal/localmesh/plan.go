// Package localmesh runs a whole mesh on one machine without root: mastd,
// a sidecar beside every workload, an ingress gateway, and (by default) the
// Bookinfo application. It backs `mast up`, `mast apply` and `mast delete`.
package localmesh

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/proxyconfig"
)

// Options are the addresses the local mesh uses.
type Options struct {
	XDSAddr        string // mastd's plaintext xDS, e.g. 127.0.0.1:15010
	MonitoringAddr string // mastd's debug server, e.g. 127.0.0.1:15014
	GatewayIP      string // the ingress gateway's address, e.g. 127.0.0.1
	Bookinfo       bool   // start Bookinfo's applications beside their sidecars
	// MTLS gives every proxy a workload certificate from mastd's CA, so
	// sidecars talk mutual TLS (auto mTLS, PERMISSIVE unless configured).
	MTLS bool
	// SecureXDSAddr is mastd's CA (and xDS over TLS) address, e.g.
	// 127.0.0.1:15012; CADir the CA's state directory and TokenDir where
	// each proxy's bootstrap token is written (see tokens.go).
	SecureXDSAddr, CADir, TokenDir string
	// CredentialsDir, when set, is the ingress gateway's --credentials-dir:
	// what a Gateway's credentialName names, one directory per credential
	// holding a Kubernetes TLS Secret's keys as files (tls.crt, tls.key, ca.crt).
	CredentialsDir string
	// BrokerAddr, when set, runs mastd's Open Service Broker there.
	BrokerAddr string
	// MixerAddr is where mastd serves Istio's Mixer (with MTLS); "" runs none.
	MixerAddr string
	// PolicyCheckFailOpen and MixerCheckServer are MeshConfig's (Istio
	// 1.4): requests pass when the Mixer cannot be reached; the host:port
	// proxies check with ("" is mastd's own Mixer).
	PolicyCheckFailOpen bool
	MixerCheckServer    string
}

// Proc is one process of the local mesh.
type Proc struct {
	Name    string   // e.g. "reviews-v2", "reviews-v2-sidecar", "mastd"
	Program string   // "mastd", "mast-proxy" or "bookinfo"
	Args    []string // command-line arguments
	Env     []string // extra environment, KEY=VALUE
	// ProxyID is the xDS node ID of a proxy process, "" otherwise.
	ProxyID string
	// Admin is a proxy's admin address, "" otherwise.
	Admin string
	// Identity is a proxy's namespace and service account when it gets a
	// workload certificate (Options.MTLS), zero otherwise.
	Identity Identity
}

// Identity names a workload identity: spiffe://TD/ns/Namespace/sa/ServiceAccount.
type Identity struct {
	Namespace, ServiceAccount string
}

// Plan derives the processes of the local mesh from its configuration: a
// sidecar for every WorkloadEntry with a loopback address, an ingress gateway
// labelled istio=ingressgateway, and with opts.Bookinfo the application of each
// Bookinfo workload, listening where its Sidecar's ingress defaultEndpoint says.
// It is a pure function; the caller starts mastd first.
func Plan(snap *config.Snapshot, opts Options) ([]Proc, error) {
	var procs []Proc
	defaultEndpoints := sidecarEndpoints(snap)
	pcRules := proxyconfig.Rules(snap.List(config.ProxyConfig))
	for _, r := range snap.List(config.WorkloadEntry) {
		we := r.Spec.(*networking.WorkloadEntry)
		addr, err := netip.ParseAddr(we.GetAddress())
		if err != nil || !addr.IsLoopback() {
			continue // not on this machine: its proxy is run by someone else
		}
		sa := we.GetServiceAccount()
		if sa == "" {
			sa = "default"
		}
		id := fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", addr, r.Name, r.Namespace, r.Namespace)
		admin := addr.String() + ":15000"
		env, err := proxyEnv(pcRules, r.Namespace, we.GetLabels(), r.Annotations)
		if err != nil {
			return nil, fmt.Errorf("%s: WorkloadEntry %s/%s: %w", r.Source, r.Namespace, r.Name, err)
		}
		procs = append(procs, opts.withIdentity(Proc{
			Name:    r.Name + "-sidecar",
			Program: "mast-proxy",
			ProxyID: id,
			Admin:   admin,
			Env:     env,
			Args: []string{
				"--node-id", id,
				"--xds-addr", opts.XDSAddr,
				"--admin-addr", admin,
				"--drain-period", "1s",
				"--labels", labelString(we.GetLabels()),
				"--meta", "INTERCEPTION_MODE=NONE",
				"--meta", "SERVICE_ACCOUNT=" + sa,
			},
		}, Identity{Namespace: r.Namespace, ServiceAccount: sa}))
		app, version := we.GetLabels()["app"], we.GetLabels()["version"]
		if !opts.Bookinfo || !isBookinfo(app) {
			continue
		}
		listen, ok := defaultEndpoints[r.Namespace+"/"+r.Name]
		if !ok {
			return nil, fmt.Errorf("%s: WorkloadEntry %s/%s: no Sidecar with an ingress defaultEndpoint selects it; the application would have no address", r.Source, r.Namespace, r.Name)
		}
		procs = append(procs, Proc{
			Name:    r.Name,
			Program: "bookinfo",
			Args:    []string{"--service", app, "--version", version, "--addr", listen, "--instance", r.Name},
			Env:     []string{"HTTP_PROXY=http://" + addr.String() + ":15001", "http_proxy=http://" + addr.String() + ":15001", "NO_PROXY=", "no_proxy="},
		})
	}
	gwID := fmt.Sprintf("router~%s~istio-ingressgateway.istio-system~istio-system.svc.cluster.local", opts.GatewayIP)
	// The admin interface is loopback-only, even when the gateway serves on
	// every interface (--gateway-ip 0.0.0.0).
	gwAdmin := "127.0.0.1:15000"
	if ip, err := netip.ParseAddr(opts.GatewayIP); err == nil && ip.IsLoopback() {
		gwAdmin = net.JoinHostPort(opts.GatewayIP, "15000")
	}
	gwArgs := []string{
		"--node-id", gwID,
		"--xds-addr", opts.XDSAddr,
		"--admin-addr", gwAdmin,
		"--drain-period", "1s",
		"--labels", "istio=ingressgateway,app=istio-ingressgateway",
		"--meta", "INTERCEPTION_MODE=NONE",
		"--meta", "SERVICE_ACCOUNT=" + gatewayServiceAccount,
	}
	if opts.CredentialsDir != "" {
		gwArgs = append(gwArgs, "--credentials-dir", opts.CredentialsDir)
	}
	gwEnv, err := proxyEnv(pcRules, "istio-system", map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}, nil)
	if err != nil {
		return nil, fmt.Errorf("the ingress gateway: %w", err)
	}
	procs = append(procs, opts.withIdentity(Proc{
		Name:    "istio-ingressgateway",
		Program: "mast-proxy",
		ProxyID: gwID,
		Admin:   gwAdmin,
		Env:     gwEnv,
		Args:    gwArgs,
	}, Identity{Namespace: "istio-system", ServiceAccount: gatewayServiceAccount}))
	return procs, nil
}

// localAnnotationFields are the proxy.istio.io/config fields the local
// mesh applies to a proxy it starts; any other one is refused by name.
var localAnnotationFields = []string{"concurrency", "proxyMetadata"}

// proxyEnv is the environment of a proxy the local mesh starts for a
// workload in namespace with labels: ProxyConfig resources with Istio's
// precedence (root namespace istio-system < namespace < workload selector),
// then the workload's proxy.istio.io/config annotation (concurrency, and
// proxyMetadata as environment variables). Concurrency becomes GOMAXPROCS;
// image has no meaning here: the local mesh runs its own mast-proxy binary.
func proxyEnv(rules []proxyconfig.Rule, namespace string, labels, annotations map[string]string) ([]string, error) {
	eff := proxyconfig.Resolve(rules, rootNamespace, namespace, labels)
	if v, ok := annotations[proxyconfig.Annotation]; ok {
		pc, err := proxyconfig.ParseAnnotation(v)
		if err != nil {
			return nil, err
		}
		for _, f := range proxyconfig.SetFields(pc) {
			if !slices.Contains(localAnnotationFields, f) {
				return nil, fmt.Errorf("annotation %s: field %s is not applied by the local mesh (it applies %s)",
					proxyconfig.Annotation, f, strings.Join(localAnnotationFields, ", "))
			}
		}
		if c := pc.GetConcurrency(); c != nil {
			v := c.GetValue()
			eff.Concurrency = &v
		}
		if md := pc.GetProxyMetadata(); len(md) > 0 {
			eff.Env = maps.Clone(eff.Env)
			if eff.Env == nil {
				eff.Env = map[string]string{}
			}
			maps.Copy(eff.Env, md)
		}
	}
	env, err := eff.ProcessEnv()
	if err != nil {
		return nil, fmt.Errorf("ProxyConfig: %w", err)
	}
	return env, nil
}

// rootNamespace is the local mesh's root namespace (MeshConfig's default).
const rootNamespace = "istio-system"

func isBookinfo(app string) bool {
	switch app {
	case "productpage", "details", "reviews", "ratings":
		return true
	}
	return false
}

// sidecarEndpoints maps namespace/workload-entry-name to the first ingress
// defaultEndpoint of a Sidecar whose workloadSelector matches its labels.
func sidecarEndpoints(snap *config.Snapshot) map[string]string {
	out := map[string]string{}
	for _, r := range snap.List(config.WorkloadEntry) {
		we := r.Spec.(*networking.WorkloadEntry)
		for _, s := range snap.List(config.Sidecar) {
			sc := s.Spec.(*networking.Sidecar)
			if s.Namespace != r.Namespace || sc.GetWorkloadSelector() == nil || !selects(sc.GetWorkloadSelector().GetLabels(), we.GetLabels()) {
				continue
			}
			for _, in := range sc.GetIngress() {
				if ep := in.GetDefaultEndpoint(); ep != "" && !strings.HasPrefix(ep, "unix://") {
					out[r.Namespace+"/"+r.Name] = ep
					break
				}
			}
		}
	}
	return out
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}
