package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// gatewayCredentialConfig: an HTTPS server on the ingress gateway with a
// credential from `mast up`'s credential directory, and one naming a
// credential that does not exist.
const gatewayCredentialConfig = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-https}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: bookinfo-credential}
  - port: {number: 8444, name: https-missing, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: absent-credential}
`

// proxyConfigSecrets checks `mast proxy-config secret|bootstrap|all` on
// `mast up`'s proxies: the sidecar's workload certificate and trust bundle
// from mastd's CA, the gateway's credential from STATE/credentials (and
// a missing one as WARMING), private keys never shown, and the bootstrap's
// node and xDS server.
func proxyConfigSecrets(t *testing.T, m *mesh) {
	ca := newTestCA(t, "bookinfo root")
	leaf := ca.issue(t, filepath.Join(m.stateDir, "credentials", "bookinfo-credential"), "tls.crt", "tls.key", "bookinfo.example.com")
	dir := t.TempDir()
	writeFile(t, dir, "gateway-https.yaml", gatewayCredentialConfig)
	m.apply(filepath.Join(dir, "gateway-https.yaml"))
	defer m.mast("reset")

	row := func(out, name string) []string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == name {
				return f
			}
		}
		return nil
	}
	var out string
	eventually(t, 30*time.Second, "the gateway holds its credential", func() error {
		var err error
		out, err = m.mast("proxy-config", "secret", "istio-ingressgateway")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if r := row(out, "kubernetes://bookinfo-credential"); len(r) < 6 || r[3] != "ACTIVE" || r[4] != "true" || r[5] != leaf.SerialNumber.String() {
			return fmt.Errorf("credential row %q:\n%s", r, out)
		}
		return nil
	})
	t.Logf("mast proxy-config secret istio-ingressgateway:\n%s", out)
	if !strings.HasPrefix(out, "RESOURCE NAME") || !regexp.MustCompile(`(?m)^default\s+Cert Chain\s+ACTIVE\s+true\s+\d+\s+\S+Z\s+\S+Z$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^ROOTCA\s+CA\s+ACTIVE\s+true\s+\d+`).MatchString(out) {
		t.Errorf("the gateway's workload certificate or trust bundle is missing:\n%s", out)
	}
	if r := row(out, "kubernetes://absent-credential"); len(r) < 5 || r[3] != "WARMING" || r[4] != "false" {
		t.Errorf("the missing credential is not WARMING: %q\n%s", r, out)
	}
	js, err := m.mast("proxy-config", "secret", "istio-ingressgateway", "-o", "json")
	var pemText strings.Builder // every inline PEM of the dump, decoded
	for _, b64 := range regexp.MustCompile(`"inlineBytes": "([^"]+)"`).FindAllStringSubmatch(js, -1) {
		b, _ := base64.StdEncoding.DecodeString(b64[1])
		pemText.Write(b)
	}
	if err != nil || !strings.Contains(js, `"[redacted]"`) || strings.Contains(pemText.String(), "PRIVATE KEY") ||
		strings.Count(pemText.String(), "BEGIN CERTIFICATE") < 3 {
		t.Errorf("secret -o json: %v; want certificates and redacted keys, never a private key:\n%s", err, js)
	}

	out, err = m.mast("proxy-config", "secret", "productpage-v1")
	if err != nil || !regexp.MustCompile(`(?m)^default\s+Cert Chain\s+ACTIVE\s+true`).MatchString(out) || strings.Contains(out, "kubernetes://") {
		t.Errorf("productpage's secrets: %v\n%s", err, out)
	}
	out, err = m.mast("proxy-config", "bootstrap", "productpage-v1")
	if err != nil || !strings.Contains(out, "NODE ID:") || !strings.Contains(out, "~productpage-v1.default~") ||
		!regexp.MustCompile(`XDS SERVER:\s+127\.0\.0\.1:150(10|12) \((mTLS|plaintext)\), GRPC`).MatchString(out) || !strings.Contains(out, "ADMIN:") {
		t.Errorf("productpage's bootstrap: %v\n%s", err, out)
	}
	t.Logf("mast proxy-config bootstrap productpage-v1:\n%s", out)
	y, err := m.mast("proxy-config", "bootstrap", "productpage-v1", "-o", "yaml")
	if err != nil || !strings.Contains(y, "bootstrap:") || !strings.Contains(y, "node:") {
		t.Errorf("bootstrap -o yaml: %v\n%s", err, y)
	}
	if d := os.Getenv("MAST_CAPTURE_CONFIG_DUMPS"); d != "" {
		// Refreshes internal/ctl/testdata's dumps for the golden tables.
		for name, admin := range map[string]string{"gateway": "127.0.0.1:15000", "productpage": "127.0.1.1:15000"} {
			if resp, err := http.Get("http://" + admin + "/config_dump"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				os.WriteFile(filepath.Join(d, name+"-config_dump.json"), b, 0o644)
			}
		}
	}
	all, err := m.mast("proxy-config", "all", "istio-ingressgateway")
	if err != nil || !strings.Contains(all, "NODE ID:") || !strings.Contains(all, "SERVICE FQDN") || !strings.Contains(all, "kubernetes://bookinfo-credential") {
		t.Errorf("proxy-config all: %v\n%s", err, all)
	}
}
