package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDestinationRuleCredentialName: DestinationRule tls credentialName
// (Istio's egress TLS origination from a credential) through real mastd and
// mast-proxy, the credential store being --credentials-dir: MUTUAL presents
// the credential's client certificate and verifies the server with its
// ca.crt; SIMPLE verifies the server with a CA-only credential; a server
// the credential's CA does not trust, a client certificate the server does
// not trust, and a missing credential are all refused (503, fail closed).
func TestDestinationRuleCredentialName(t *testing.T) {
	serverCA, clientCA, otherCA := newTestCA(t, "external server root"), newTestCA(t, "external client root"), newTestCA(t, "unrelated root")
	tmp := t.TempDir()
	srvDir, creds := filepath.Join(tmp, "server"), filepath.Join(tmp, "credentials")
	serverCA.issue(t, srvDir, "tls.crt", "tls.key", "api.example.test")
	cert, err := tls.LoadX509KeyPair(filepath.Join(srvDir, "tls.crt"), filepath.Join(srvDir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(clientCA.cert)
	// The external server asks for a client certificate and verifies the
	// one it gets; it answers with the client's name, or "none".
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clients})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "none"
		if len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "client %s", who)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	// client-cred: a client certificate and the server's CA (a Kubernetes
	// TLS Secret with ca.crt); ca-only: the server's CA alone; wrong-ca:
	// another CA; untrusted-client: a client certificate from another CA.
	clientCA.issue(t, filepath.Join(creds, "client-cred"), "tls.crt", "tls.key", "client.example.test")
	serverCA.writePEM(t, filepath.Join(creds, "client-cred"), "ca.crt")
	serverCA.writePEM(t, filepath.Join(creds, "ca-only"), "ca.crt")
	otherCA.writePEM(t, filepath.Join(creds, "wrong-ca"), "ca.crt")
	otherCA.issue(t, filepath.Join(creds, "untrusted-client"), "tls.crt", "tls.key", "mallory.example.test")
	serverCA.writePEM(t, filepath.Join(creds, "untrusted-client"), "ca.crt")

	dir := t.TempDir()
	var cfg strings.Builder
	for _, h := range []struct{ name, tls string }{
		{"mutual", "{mode: MUTUAL, credentialName: client-cred, sni: api.example.test}"},
		{"simple", "{mode: SIMPLE, credentialName: ca-only, sni: api.example.test}"},
		{"wrongca", "{mode: SIMPLE, credentialName: wrong-ca, sni: api.example.test}"},
		{"untrusted", "{mode: MUTUAL, credentialName: untrusted-client, sni: api.example.test}"},
		{"missing", "{mode: MUTUAL, credentialName: no-such-credential, sni: api.example.test}"},
	} {
		fmt.Fprintf(&cfg, egressTLS, h.name, port, h.tls)
	}
	writeFile(t, dir, "egress.yaml", cfg.String())
	xdsAddr := startControlPlane(t, dir)
	ip := uniqueLoopback()
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE", "--credentials-dir", creds)
	u, _ := url.Parse("http://" + ip + ":15001")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
	get := func(host string) (int, string, error) {
		resp, err := c.Get("http://" + host + ".example.test/")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	eventually(t, 30*time.Second, "MUTUAL with credentialName presents the client certificate", func() error {
		if st, b, err := get("mutual"); err != nil || st != 200 || b != "client client.example.test" {
			return fmt.Errorf("status %d body %q (%v)", st, b, err)
		}
		return nil
	})
	if st, b, err := get("simple"); err != nil || st != 200 || b != "client none" {
		t.Errorf("SIMPLE with a CA-only credential: status %d body %q (%v), want 200 with no client certificate", st, b, err)
	}
	for _, h := range []string{"wrongca", "untrusted", "missing"} {
		if st, b, err := get(h); err != nil || st != 503 {
			t.Errorf("%s: status %d body %q (%v), want 503", h, st, b, err)
		}
	}
}
