package dataplane

import (
	"crypto/tls"
	"crypto/x509"
	"sort"
	"strconv"

	"github.com/mast-mesh/mast/internal/proxy/admin"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// Secrets implements admin.Source: the agent's workload certificate and
// trust bundle (when the proxy runs its agent), then every credential the
// accepted listeners and clusters name, as read from the credential store
// now. A secret that is named but not available is listed without
// certificates (Envoy's warming secrets). No private key leaves here.
func (p *Proxy) Secrets() []admin.Secret {
	var out []admin.Secret
	if p.cfg.Secrets != nil {
		def := admin.Secret{Name: xdsparse.SDSWorkloadCert}
		root := admin.Secret{Name: xdsparse.SDSRootCA}
		if s := p.cfg.Secrets.Secrets(); s != nil {
			v := strconv.FormatUint(s.Version, 10)
			def.Version, def.LastUpdated, def.Chain = v, s.Issued, chainOf(s.Cert)
			root.Version, root.LastUpdated, root.CA = v, s.Issued, s.Roots
		}
		out = append(out, def, root)
	}
	certs, cas := credentialNames(p.Snapshot())
	names := make([]string, 0, len(certs)+len(cas))
	for n := range certs {
		names = append(names, n)
	}
	for n := range cas {
		if !certs[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, sds := range names {
		s := admin.Secret{Name: sds}
		name, _ := xdsparse.Credential(sds)
		if p.cfg.Credentials != nil {
			if c, err := p.cfg.Credentials.Credential(name); err == nil {
				s.LastUpdated = c.Updated
				s.Version = c.Updated.UTC().Format("2006-01-02T15:04:05.000Z07:00")
				if certs[sds] && c.Cert != nil {
					s.Chain = chainOf(c.Cert)
				}
				if cas[sds] && !certs[sds] {
					s.CA = c.CACerts
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// credentialNames returns the SDS names of credentials that the
// snapshot's TLS contexts present (certs) and verify peers with (cas).
func credentialNames(s *xdsparse.Snapshot) (certs, cas map[string]bool) {
	certs, cas = map[string]bool{}, map[string]bool{}
	add := func(tc *xdsparse.TLSContext) {
		if tc == nil {
			return
		}
		for _, sds := range append([]string{tc.CertSDS}, extraSDS(tc)...) {
			if _, ok := xdsparse.Credential(sds); ok {
				certs[sds] = true
			}
		}
		if _, ok := xdsparse.Credential(tc.RootsSDS); ok {
			cas[tc.RootsSDS] = true
		}
	}
	for _, l := range s.Listeners {
		for _, c := range append(l.Chains[:len(l.Chains):len(l.Chains)], l.Default) {
			if c != nil {
				add(c.TLS)
			}
		}
	}
	for _, c := range s.Clusters {
		add(c.TLS)
		for _, m := range c.TLSMatches {
			add(m.TLS)
		}
	}
	return certs, cas
}

func extraSDS(tc *xdsparse.TLSContext) []string {
	var out []string
	for _, r := range tc.ExtraCerts {
		out = append(out, r.SDS)
	}
	return out
}

// chainOf returns c's certificates (leaf first), parsed.
func chainOf(c *tls.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(c.Certificate))
	for i, der := range c.Certificate {
		if i == 0 && c.Leaf != nil {
			out = append(out, c.Leaf)
			continue
		}
		if x, err := x509.ParseCertificate(der); err == nil {
			out = append(out, x)
		}
	}
	return out
}

// Bootstrap implements admin.Source.
func (p *Proxy) Bootstrap() admin.Bootstrap {
	return admin.Bootstrap{Node: p.cfg.Node, XDSAddress: p.cfg.XDSAddress, XDSTLS: p.cfg.XDSTLS != nil,
		XDSDelta: p.cfg.XDSDelta, AdminAddress: p.AdminAddr(), Started: p.started}
}
