package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for the gateway TLS test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

// issueRSA writes an RSA leaf for dns (server usage) as CERT and KEY files
// in dir and returns it.
func (ca *testCA) issueRSA(t *testing.T, dir, certFile, keyFile, dns string) *x509.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: dns},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: []string{dns}}, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o700)
	writeFile(t, dir, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	c, _ := x509.ParseCertificate(der)
	return c
}

// issue writes a leaf for dns (server and client usage) as CERT and KEY
// files in dir and returns it.
func (ca *testCA) issue(t *testing.T, dir, certFile, keyFile, dns string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: dns},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, DNSNames: []string{dns}}, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.MkdirAll(dir, 0o700)
	writeFile(t, dir, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	c, _ := x509.ParseCertificate(der)
	return c
}

func (ca *testCA) writePEM(t *testing.T, dir, name string) string {
	t.Helper()
	os.MkdirAll(dir, 0o700)
	writeFile(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})))
	return filepath.Join(dir, name)
}

// gatewayTLSConfig: one backend behind a gateway whose servers all take
// their certificate from the credential "gw" (credentialName), each with
// other TLS settings: %[1]d is the backend's port, %[2]s alice's SPKI pin;
// a server takes files instead (%[3]s: certificate, key, client CA
// and a CRL that lists bob); the last two have an RSA and an ECDSA
// certificate each, from credentials (credentialNames: gw-rsa and gw) and
// from files in %[4]s (tlsCertificates).
const gatewayTLSConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [gw.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 8443, name: https-simple, protocol: HTTPS}
    hosts: [gw.example.com]
    tls: {mode: SIMPLE, credentialName: gw, minProtocolVersion: TLSV1_3}
  - port: {number: 9443, name: https-mutual, protocol: HTTPS}
    hosts: [gw.example.com]
    tls: {mode: MUTUAL, credentialName: gw, subjectAltNames: [alice.example.com]}
  - port: {number: 9444, name: https-optional, protocol: HTTPS}
    hosts: [gw.example.com]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: gw, verifyCertificateSpki: [%[2]s]}
  - port: {number: 9445, name: https-tls12, protocol: HTTPS}
    hosts: [gw.example.com]
    tls: {mode: SIMPLE, credentialName: gw, maxProtocolVersion: TLSV1_2, cipherSuites: [ECDHE-ECDSA-CHACHA20-POLY1305]}
  - port: {number: 9446, name: https-missing, protocol: HTTPS}
    hosts: [gw.example.com]
    tls: {mode: SIMPLE, credentialName: nosuchcredential}
  - port: {number: 9447, name: https-crl, protocol: HTTPS}
    hosts: [gw.example.com]
    tls: {mode: MUTUAL, %[3]s}
  - port: {number: 9448, name: https-two-credentials, protocol: HTTPS}
    hosts: [gw.example.com]
    tls: {mode: SIMPLE, credentialNames: [gw-rsa, gw]}
  - port: {number: 9449, name: https-two-files, protocol: HTTPS}
    hosts: [gw.example.com]
    tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: %[4]s/rsa.pem, privateKey: %[4]s/rsa.key}, {serverCertificate: %[4]s/cert.pem, privateKey: %[4]s/key.pem}]}
  - port: {number: 9450, name: https-insecure, protocol: HTTPS}
    hosts: [gw.example.com]
    tls: {mode: MUTUAL, credentialName: gw, subjectAltNames: [alice.example.com], insecureSkipVerify: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: default}
spec:
  hosts: [gw.example.com]
  gateways: [edge]
  http:
  - route: [{destination: {host: backend.example.test, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: internal, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http-internal, protocol: HTTP}
    bind: %[5]s
    hosts: [gw.example.com]
  - port: {number: 0, name: http-uds, protocol: HTTP}
    bind: unix://%[6]s
    hosts: [gw.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: internal, namespace: default}
spec:
  hosts: [gw.example.com]
  gateways: [internal]
  http:
  - route: [{destination: {host: backend.example.test, port: {number: 80}}}]
    headers: {response: {set: {x-served-by: internal}}}
`

// TestGatewayServerTLS: a real gateway mast-proxy terminates TLS for
// Istio Gateway servers with credentialName read from its credential
// directory (--credentials-dir, one directory per credential with a
// Kubernetes TLS Secret's keys), checked with curl and openssl s_client:
// SIMPLE with minProtocolVersion, MUTUAL with subjectAltNames,
// OPTIONAL_MUTUAL with verifyCertificateSpki, maxProtocolVersion with
// cipherSuites, MUTUAL from files with caCrl, httpsRedirect, MUTUAL with
// insecureSkipVerify (clients whose certificates fail the checks get in,
// clients without one do not), servers with a bind (another IP on the same
// port, and a unix socket: each serves only its own Gateway's routes), and a
// server naming a missing credential refusing handshakes (fail closed)
// while the others serve.
func TestGatewayServerTLS(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed: apt-get install curl (.ci/run does)")
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: apt-get install openssl (.ci/run does)")
	}
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend %s", r.Host)
	})}
	go srv.Serve(backend)
	t.Cleanup(func() { srv.Close() })

	tmp := t.TempDir()
	creds, clients := filepath.Join(tmp, "credentials"), filepath.Join(tmp, "clients")
	serverCA, clientCA := newTestCA(t, "gateway server root"), newTestCA(t, "gateway client root")
	gwLeaf := serverCA.issue(t, filepath.Join(creds, "gw"), "tls.crt", "tls.key", "gw.example.com")
	gwRSA := serverCA.issueRSA(t, filepath.Join(creds, "gw-rsa"), "tls.crt", "tls.key", "gw.example.com")
	clientCA.writePEM(t, filepath.Join(creds, "gw"), "ca.crt")
	serverRoot := serverCA.writePEM(t, clients, "server-root.pem")
	alice := clientCA.issue(t, clients, "alice.crt", "alice.key", "alice.example.com")
	newTestCA(t, "a stranger's root").issue(t, clients, "carol.crt", "carol.key", "carol.example.com")
	bob := clientCA.issue(t, clients, "bob.crt", "bob.key", "bob.example.com")
	spki := sha256.Sum256(alice.RawSubjectPublicKeyInfo)
	files := filepath.Join(tmp, "files")
	filesECDSA := serverCA.issue(t, files, "cert.pem", "key.pem", "gw.example.com")
	filesRSA := serverCA.issueRSA(t, files, "rsa.pem", "rsa.key", "gw.example.com")
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: bob.SerialNumber, RevocationTime: time.Now()}}},
		clientCA.cert, clientCA.key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, files, "ca.crl", string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl})))
	fileTLS := fmt.Sprintf("serverCertificate: %[1]s/cert.pem, privateKey: %[1]s/key.pem, caCertificates: %[2]s, caCrl: %[1]s/ca.crl",
		files, clientCA.writePEM(t, files, "client-ca.pem"))

	dir := t.TempDir()
	ipA, ipB, ipC := 100+mrand.IntN(100), mrand.IntN(256), 2+mrand.IntN(250)
	gwIP := fmt.Sprintf("127.%d.%d.%d", ipA, ipB, ipC)
	bindIP := fmt.Sprintf("127.%d.%d.%d", ipA, ipB, ipC+1) // the internal server's bind
	sock := filepath.Join(tmp, "gw.sock")
	writeFile(t, dir, "gateway.yaml", fmt.Sprintf(gatewayTLSConfig, backend.Addr().(*net.TCPAddr).Port, base64.StdEncoding.EncodeToString(spki[:]), fileTLS, files,
		bindIP, sock))
	xds := startControlPlane(t, dir)
	gw := start(t, "mast-proxy", "--type", "router", "--xds-addr", xds, "--admin-addr", "127.0.0.1:0", "--drain-period", "1s",
		"--node-id", fmt.Sprintf("router~%s~gw.default~default.svc.cluster.local", gwIP),
		"--labels", "istio=ingressgateway", "--meta", "INTERCEPTION_MODE=NONE", "--credentials-dir", creds)

	// run curl against the gateway as gw.example.com; it returns the
	// status code ("000" when TLS failed) and the body.
	run := func(port int, extra ...string) (string, string) {
		args := append([]string{"-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5", "--cacert", serverRoot,
			"--resolve", fmt.Sprintf("gw.example.com:%d:%s", port, gwIP)}, extra...)
		scheme := "https"
		if port == 8080 {
			scheme = "http"
		}
		args = append(args, fmt.Sprintf("%s://gw.example.com:%d/hello", scheme, port))
		out, _ := exec.Command(curl, args...).CombinedOutput()
		s := strings.TrimSpace(string(out))
		i := strings.LastIndexByte(s, '\n')
		if i < 0 {
			return s, ""
		}
		return s[i+1:], s[:i]
	}
	cert := func(name string) []string {
		return []string{"--cert", filepath.Join(clients, name+".crt"), "--key", filepath.Join(clients, name+".key")}
	}
	eventually(t, 30*time.Second, "the SIMPLE credentialName server answers", func() error {
		if code, body := run(8443); code != "200" || body != "backend gw.example.com:8443" {
			return fmt.Errorf("status %s body %q", code, body)
		}
		return nil
	})
	expect := func(what string, want string, port int, extra ...string) {
		t.Helper()
		if code, body := run(port, extra...); code != want {
			t.Errorf("%s: status %s (%q), want %s", what, code, body, want)
		}
	}

	t.Run("SIMPLE with minProtocolVersion TLSV1_3", func(t *testing.T) {
		expect("TLS 1.3 client", "200", 8443)
		expect("TLS 1.2 client", "000", 8443, "--tls-max", "1.2")
	})
	t.Run("MUTUAL with subjectAltNames", func(t *testing.T) {
		expect("no client certificate", "000", 9443)
		expect("alice", "200", 9443, cert("alice")...)
		expect("bob (same CA, SAN not listed)", "000", 9443, cert("bob")...)
	})
	t.Run("OPTIONAL_MUTUAL with verifyCertificateSpki", func(t *testing.T) {
		expect("no client certificate", "200", 9444)
		expect("alice (pinned)", "200", 9444, cert("alice")...)
		expect("bob (not pinned)", "000", 9444, cert("bob")...)
	})
	t.Run("maxProtocolVersion TLSV1_2 and cipherSuites", func(t *testing.T) {
		out, _ := exec.Command(openssl, "s_client", "-connect", gwIP+":9445", "-servername", "gw.example.com", "-tls1_2").CombinedOutput()
		if !strings.Contains(string(out), "ECDHE-ECDSA-CHACHA20-POLY1305") {
			t.Errorf("openssl s_client -tls1_2 did not negotiate ECDHE-ECDSA-CHACHA20-POLY1305:\n%s", out)
		}
		out, _ = exec.Command(openssl, "s_client", "-connect", gwIP+":9445", "-servername", "gw.example.com", "-tls1_2",
			"-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256").CombinedOutput()
		if strings.Contains(string(out), "Cipher is ECDHE") {
			t.Errorf("a TLS 1.2 client offering only another suite shook hands:\n%s", out)
		}
		out, _ = exec.Command(openssl, "s_client", "-connect", gwIP+":9445", "-servername", "gw.example.com", "-tls1_3").CombinedOutput()
		if strings.Contains(string(out), "TLSv1.3") && strings.Contains(string(out), "Cipher is TLS_") {
			t.Errorf("a TLS 1.3 client shook hands with maxProtocolVersion TLSV1_2:\n%s", out)
		}
		expect("curl over TLS 1.2", "200", 9445)
	})
	t.Run("MUTUAL with insecureSkipVerify", func(t *testing.T) {
		expect("no client certificate", "000", 9450)
		expect("alice", "200", 9450, cert("alice")...)
		expect("bob (SAN not listed)", "200", 9450, cert("bob")...)
		expect("carol (a stranger's CA)", "200", 9450, cert("carol")...)
		expect("carol without insecureSkipVerify", "000", 9443, cert("carol")...)
	})
	t.Run("bind: another IP and a unix socket", func(t *testing.T) {
		// curlAt asks gw.example.com at addr (or through the unix socket)
		// and returns the status and the x-served-by header.
		curlAt := func(extra ...string) (string, string) {
			args := append([]string{"-sS", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}", "--max-time", "5"}, extra...)
			out, _ := exec.Command(curl, args...).CombinedOutput()
			s := strings.TrimSpace(string(out))
			by := ""
			for _, l := range strings.Split(s, "\n") {
				if v, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(l)), "x-served-by:"); ok {
					by = strings.TrimSpace(v)
				}
			}
			return s[max(0, len(s)-3):], by
		}
		eventually(t, 30*time.Second, "the bound server answers", func() error {
			if code, by := curlAt("--resolve", "gw.example.com:8080:"+bindIP, "http://gw.example.com:8080/hello"); code != "200" || by != "internal" {
				return fmt.Errorf("%s:8080: status %s x-served-by %q, want 200 internal", bindIP, code, by)
			}
			return nil
		})
		if code, by := curlAt("--unix-socket", sock, "http://gw.example.com/hello"); code != "200" || by != "internal" {
			t.Errorf("unix socket %s: status %s x-served-by %q, want 200 internal", sock, code, by)
		}
		if code, by := curlAt("--resolve", "gw.example.com:8080:"+gwIP, "http://gw.example.com:8080/hello"); code != "301" || by != "" {
			t.Errorf("%s:8080 (the unbound server): status %s x-served-by %q, want the edge gateway's 301", gwIP, code, by)
		}
		if code, _ := curlAt("--resolve", "gw.example.com:8443:"+bindIP, "-k", "https://gw.example.com:8443/hello"); code != "000" {
			t.Errorf("%s:8443: status %s, want no listener there (000)", bindIP, code)
		}
	})
	t.Run("MUTUAL with caCrl", func(t *testing.T) {
		expect("alice", "200", 9447, cert("alice")...)
		expect("bob (revoked)", "000", 9447, cert("bob")...)
	})
	t.Run("httpsRedirect", func(t *testing.T) {
		out, _ := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--max-time", "5",
			"--resolve", "gw.example.com:8080:"+gwIP, "http://gw.example.com:8080/hello").CombinedOutput()
		if got := strings.TrimSpace(string(out)); got != "301 https://gw.example.com:8080/hello" && got != "301 https://gw.example.com/hello" {
			t.Errorf("http server with httpsRedirect: %q, want 301 to https", got)
		}
	})
	// served runs openssl s_client offering only sigalg and returns the
	// serial number of the certificate the gateway presented.
	served := func(port int, sigalg string) string {
		t.Helper()
		out, _ := exec.Command(openssl, "s_client", "-connect", fmt.Sprintf("%s:%d", gwIP, port), "-servername", "gw.example.com",
			"-sigalgs", sigalg, "-showcerts").CombinedOutput()
		block, _ := pem.Decode(out[max(0, strings.Index(string(out), "-----BEGIN CERTIFICATE")):])
		if block == nil {
			t.Errorf("openssl s_client -sigalgs %s to port %d: no certificate:\n%s", sigalg, port, out)
			return ""
		}
		c, _ := x509.ParseCertificate(block.Bytes)
		return c.SerialNumber.String()
	}
	t.Run("credentialNames: RSA and ECDSA, each to the client that asks for it", func(t *testing.T) {
		if got := served(9448, "ecdsa_secp256r1_sha256"); got != gwLeaf.SerialNumber.String() {
			t.Errorf("ECDSA-only client got serial %s, want gw's ECDSA certificate %s", got, gwLeaf.SerialNumber)
		}
		if got := served(9448, "rsa_pss_rsae_sha256"); got != gwRSA.SerialNumber.String() {
			t.Errorf("RSA-only client got serial %s, want gw-rsa's certificate %s", got, gwRSA.SerialNumber)
		}
		expect("curl", "200", 9448)
	})
	t.Run("tlsCertificates: RSA and ECDSA files, each to the client that asks for it", func(t *testing.T) {
		if got := served(9449, "ecdsa_secp256r1_sha256"); got != filesECDSA.SerialNumber.String() {
			t.Errorf("ECDSA-only client got serial %s, want %s", got, filesECDSA.SerialNumber)
		}
		if got := served(9449, "rsa_pss_rsae_sha256"); got != filesRSA.SerialNumber.String() {
			t.Errorf("RSA-only client got serial %s, want %s", got, filesRSA.SerialNumber)
		}
	})
	t.Run("proxy-config secret on the bare gateway", func(t *testing.T) {
		i := strings.Index(gw.Output(), `msg="admin listening" addr=`)
		if i < 0 {
			t.Fatalf("no admin address in the gateway's log")
		}
		admin := strings.Fields(gw.Output()[i+len(`msg="admin listening" addr=`):])[0]
		out, err := exec.Command(filepath.Join(binDir, "mast"), "proxy-config", "secret", "gw", "--admin-address", admin).CombinedOutput()
		t.Logf("mast proxy-config secret gw --admin-address %s:\n%s", admin, out)
		for _, want := range []string{
			`kubernetes://gw\s+Cert Chain\s+ACTIVE\s+true\s+` + gwLeaf.SerialNumber.String(),
			`kubernetes://gw-rsa\s+Cert Chain\s+ACTIVE\s+true\s+` + gwRSA.SerialNumber.String(),
			`kubernetes://gw-cacert\s+CA\s+ACTIVE\s+true\s+`,
			`kubernetes://nosuchcredential\s+Cert Chain\s+WARMING\s+false`,
		} {
			if !regexp.MustCompile(want).Match(out) {
				t.Errorf("%v: no line matching %q", err, want)
			}
		}
	})
	t.Run("missing credential fails closed", func(t *testing.T) {
		expect("server naming nosuchcredential", "000", 9446)
		if !strings.Contains(gw.Output(), `credential \"nosuchcredential\"`) && !strings.Contains(gw.Output(), `credential "nosuchcredential"`) {
			t.Errorf("the gateway's log does not name the missing credential:\n%s", gw.Output())
		}
	})
}
