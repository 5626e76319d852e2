package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/agent"
	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// WorkloadCertMeta is the node metadata key by which a proxy tells the
// control plane that its agent holds a workload certificate, so that it can
// take part in mTLS (auto mTLS, inbound TLS chains).
const WorkloadCertMeta = "MAST_WORKLOAD_CERT"

// agentFlags are the flags of the proxy's certificate agent.
type agentFlags struct {
	caAddr, caRoot, caServerName, tokenFile string
	trustDomain, serviceAccount, sdsAddr    string
	sdsTokenFile                            string
	certTTL                                 time.Duration
}

func (f *agentFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.caAddr, "ca-addr", "", "CA address (mastd --secure-xds-addr, e.g. 127.0.0.1:15012); enables the agent: workload certificate and mTLS")
	fs.StringVar(&f.caRoot, "ca-root-file", "", "PEM roots the CA's serving certificate chains to (the CA directory's root-cert.pem)")
	fs.StringVar(&f.caServerName, "ca-server-name", agent.DefaultCAServerName, "name checked in the CA's serving certificate")
	fs.StringVar(&f.tokenFile, "token-file", "", "bootstrap token proving the workload's identity to the CA (re-read on each use)")
	fs.StringVar(&f.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain")
	fs.StringVar(&f.serviceAccount, "service-account", "", "service account (default: SERVICE_ACCOUNT metadata, else default)")
	fs.DurationVar(&f.certTTL, "cert-ttl", 0, "certificate lifetime to request (0: the CA's default)")
	fs.StringVar(&f.sdsAddr, "sds-addr", "", "also serve the certificates over SDS for Envoy: unix:///path/socket (mode 0600), or a loopback 127.0.0.1:PORT with --sds-token-file")
	fs.StringVar(&f.sdsTokenFile, "sds-token-file", "", "bearer token SDS callers must send (required for a TCP --sds-addr)")
}

func (f *agentFlags) enabled() bool { return f.caAddr != "" }

// start runs the agent for node's identity and waits for its first
// certificate. It returns nil secrets when the agent is off.
func (f *agentFlags) start(ctx context.Context, node *xdswire.Node, log *slog.Logger) (*agent.Agent, func(), error) {
	if !f.enabled() {
		if f.sdsAddr != "" || f.tokenFile != "" {
			return nil, nil, errors.New("--sds-addr and --token-file need --ca-addr")
		}
		return nil, func() {}, nil
	}
	ns := node.MetaString("NAMESPACE")
	sa := f.serviceAccount
	if sa == "" {
		sa = node.MetaString("SERVICE_ACCOUNT")
	}
	if sa == "" {
		sa = "default"
	}
	id, err := agent.WorkloadID(f.trustDomain, ns, sa)
	if err != nil {
		return nil, nil, fmt.Errorf("workload identity: %w", err)
	}
	a, err := agent.New(agent.Config{CAAddr: f.caAddr, CAServerName: f.caServerName, RootCertFile: f.caRoot,
		TokenFile: f.tokenFile, ID: id, CertTTL: f.certTTL, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	actx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.Run(actx) }()
	if f.sdsAddr != "" {
		l, err := agent.ListenSDS(f.sdsAddr, f.sdsTokenFile)
		if err != nil {
			cancel()
			wg.Wait()
			return nil, nil, err
		}
		log.Info("serving SDS", "addr", l.Addr().String())
		wg.Add(1)
		go func() { defer wg.Done(); agent.NewSDS(a).Serve(actx, l, f.sdsTokenFile) }()
	}
	stop := func() { cancel(); wg.Wait(); a.Close() }
	log.Info("requesting workload certificate", "id", id.String(), "ca", f.caAddr)
	select {
	case <-a.Ready():
	case <-ctx.Done():
	}
	return a, stop, nil
}
