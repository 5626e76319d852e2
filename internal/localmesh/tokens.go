package localmesh

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
)

// gatewayServiceAccount is Istio's ingress gateway service account.
const gatewayServiceAccount = "istio-ingressgateway-service-account"

// tokenTTL bounds a bootstrap token: proxies use it for their first
// certificate (and again only if they let their certificate expire).
const tokenTTL = 30 * 24 * time.Hour

// withIdentity adds the agent's flags to a proxy when the mesh runs mTLS.
func (o Options) withIdentity(p Proc, id Identity) Proc {
	if !o.MTLS {
		return p
	}
	p.Identity = id
	// xDS goes over mTLS to the CA's port (15012), where mastd binds the
	// node to the certificate's identity; the plaintext port is not used.
	for i := 0; i+1 < len(p.Args); i++ {
		if p.Args[i] == "--xds-addr" {
			p.Args[i+1] = o.SecureXDSAddr
		}
	}
	p.Args = append(p.Args,
		"--ca-addr", o.SecureXDSAddr,
		"--ca-root-file", filepath.Join(o.CADir, "root-cert.pem"),
		"--token-file", tokenPath(o.TokenDir, p.Name),
	)
	return p
}

func tokenPath(dir, proc string) string { return filepath.Join(dir, proc+".jwt") }

// IssueTokens prepares the mesh's CA before mastd starts: it opens (or
// creates) the CA state in opts.CADir with the CA's own code and writes a
// bootstrap token (mode 0600) for every proxy of procs with an identity.
// The CA object is dropped afterwards: mastd, started next with --ca-dir,
// is the only process that keeps the CA's keys.
func IssueTokens(opts Options, trustDomain string, procs []Proc) error {
	if !opts.MTLS {
		return nil
	}
	if err := os.MkdirAll(opts.CADir, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(opts.TokenDir, 0o700); err != nil {
		return err
	}
	c, err := ca.New(ca.Config{Dir: opts.CADir, TrustDomain: trustDomain})
	if err != nil {
		return fmt.Errorf("the mesh's CA in %s: %w", opts.CADir, err)
	}
	for _, p := range procs {
		if p.Identity == (Identity{}) {
			continue
		}
		if err := c.WriteTokenFile(tokenPath(opts.TokenDir, p.Name), p.Identity.Namespace, p.Identity.ServiceAccount, tokenTTL); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return nil
}
