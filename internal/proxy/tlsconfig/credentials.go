package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/agent"
	"github.com/mast-mesh/mast/internal/proxy/revocation"
)

// Credential is what a credentialName refers to: a certificate to present
// and/or CA certificates (with an optional CRL) to verify peers with.
type Credential struct {
	Cert  *tls.Certificate // nil when the credential holds no key pair
	Roots *x509.CertPool   // nil when it holds no CA certificates
	CRL   *revocation.List // nil when it holds no CRL
	// CACerts are Roots' certificates, in file order (for the admin's
	// secrets dump).
	CACerts []*x509.Certificate
	// Updated is the newest modification time of the credential's files.
	Updated time.Time
}

// Credentials serves credentials by name (Gateway and DestinationRule
// credentialName); *DirCredentials implements it.
type Credentials interface {
	Credential(name string) (*Credential, error)
}

var _ Credentials = (*DirCredentials)(nil)

// DirCredentials serves credentials from a directory, one subdirectory per
// credential holding the keys of a Kubernetes Secret as files: tls.crt and
// tls.key (or cert and key), ca.crt (or cacert) and ca.crl. Istio's
// NAME-cacert credential is the directory NAME-cacert, or else the CA
// certificates of NAME. Files are read again when their modification time
// or size changes, so a rotated certificate is served from the next
// handshake on.
type DirCredentials struct {
	Dir string

	mu    sync.Mutex
	cache map[string]cachedCredential
}

type cachedCredential struct {
	stamp string
	cred  *Credential
}

// The file names of a credential's parts, Kubernetes' TLS Secret keys first,
// then Istio's generic Secret keys.
var (
	certFiles = []string{"tls.crt", "cert"}
	keyFiles  = []string{"tls.key", "key"}
	caFiles   = []string{"ca.crt", "cacert"}
	crlFiles  = []string{"ca.crl"}
)

// Credential returns the credential name, read from d.Dir.
func (d *DirCredentials) Credential(name string) (*Credential, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("credential %q: not a valid name", name)
	}
	dir := filepath.Join(d.Dir, name)
	caOnly := false
	if base, ok := strings.CutSuffix(name, "-cacert"); ok {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			dir, caOnly = filepath.Join(d.Dir, base), true
		}
	}
	files := map[string][]byte{}
	var stamp strings.Builder
	var updated time.Time
	for _, group := range [][]string{certFiles, keyFiles, caFiles, crlFiles} {
		for _, f := range group {
			p := filepath.Join(dir, f)
			st, err := os.Stat(p)
			if err != nil {
				continue
			}
			fmt.Fprintf(&stamp, "%s %d %d;", f, st.ModTime().UnixNano(), st.Size())
			if st.ModTime().After(updated) {
				updated = st.ModTime()
			}
			files[group[0]] = nil
			if b, err := os.ReadFile(p); err == nil {
				files[group[0]] = b
			}
			break
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("credential %q: no tls.crt, tls.key, ca.crt or ca.crl in %s", name, dir)
	}
	d.mu.Lock()
	c, ok := d.cache[name]
	d.mu.Unlock()
	if ok && c.stamp == stamp.String() {
		return c.cred, nil
	}
	cred, err := parseCredential(files, caOnly)
	if err != nil {
		return nil, fmt.Errorf("credential %q (%s): %w", name, dir, err)
	}
	cred.Updated = updated
	d.mu.Lock()
	if d.cache == nil {
		d.cache = map[string]cachedCredential{}
	}
	d.cache[name] = cachedCredential{stamp: stamp.String(), cred: cred}
	d.mu.Unlock()
	return cred, nil
}

func parseCredential(files map[string][]byte, caOnly bool) (*Credential, error) {
	cred := &Credential{}
	chain, hasChain := files["tls.crt"]
	key, hasKey := files["tls.key"]
	if !caOnly && (hasChain || hasKey) {
		if !hasChain || !hasKey {
			return nil, errors.New("tls.crt and tls.key must both be present")
		}
		c, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("tls.crt/tls.key: %w", err)
		}
		cred.Cert = &c
	}
	if ca, ok := files["ca.crt"]; ok {
		roots, err := agent.ParseCertsPEM(ca)
		if err != nil {
			return nil, fmt.Errorf("ca.crt: %w", err)
		}
		cred.Roots = x509.NewCertPool()
		cred.CACerts = roots
		for _, r := range roots {
			cred.Roots.AddCert(r)
		}
	}
	if crl, ok := files["ca.crl"]; ok {
		l, err := revocation.Parse(crl)
		if err != nil {
			return nil, fmt.Errorf("ca.crl: %w", err)
		}
		cred.CRL = l
	}
	return cred, nil
}

// credential returns the credential an SDS name refers to, or an error
// saying why there is none.
func (b *Builder) credential(name string) (*Credential, error) {
	if b.Credentials == nil {
		return nil, fmt.Errorf("credential %q: this proxy has no credential store (mast-proxy --credentials-dir)", name)
	}
	return b.Credentials.Credential(name)
}
