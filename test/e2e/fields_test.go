package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// externalTLSServer is a TLS server standing in for an external host: its
// certificate, for the names given, is signed by a fresh CA whose PEM file
// it returns with its port. It answers "tls <SNI>". Beside the CA file, the
// CA's revocation lists: revoked.crl lists the server's certificate,
// clear.crl lists nothing.
func externalTLSServer(t *testing.T, names ...string) (int, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "external test root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: names}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	for file, revoked := range map[string][]x509.RevocationListEntry{
		"revoked.crl": {{SerialNumber: big.NewInt(2), RevocationTime: now}},
		"clear.crl":   nil,
	} {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute),
			NextUpdate: now.Add(time.Hour), RevokedCertificateEntries: revoked}, ca, caKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(caPath), file), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls %s", r.TLS.ServerName)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port, caPath
}

// egressTLS is Istio's egress-rule-google-apis pattern for one external
// host: plain HTTP from the application on port 80, TLS originated by the
// sidecar on port 443 per the DestinationRule's tls settings (%[3]s).
const egressTLS = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: default}
spec:
  hosts: [%[1]s.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[2]d, https: %[2]d}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %[1]s, namespace: default}
spec:
  hosts: [%[1]s.example.test]
  http:
  - match: [{port: 80}]
    route: [{destination: {host: %[1]s.example.test, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %[1]s, namespace: default}
spec:
  host: %[1]s.example.test
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: %[3]s
---
`

// TestDestinationRuleTLSVerifiesServers: DestinationRule tls SIMPLE without
// caCertificates verifies the server against the system's roots (it used
// to accept any certificate), names it by the host (SNI) unless sni says
// otherwise, accepts the names of subjectAltNames, and skips verification
// only with insecureSkipVerify; with caCrl, a server whose certificate
// the CRL lists is refused. Real mastd and mast-proxy; the "system
// roots" of the second proxy are the test CA, through SSL_CERT_FILE.
func TestDestinationRuleTLSVerifiesServers(t *testing.T) {
	port, caPath := externalTLSServer(t, "api.example.test")
	crlDir := filepath.Dir(caPath)
	dir := t.TempDir()
	var cfg strings.Builder
	for _, h := range []struct{ name, tls string }{
		{"crlrevoked", fmt.Sprintf("{mode: SIMPLE, sni: api.example.test, caCertificates: %s, caCrl: %s}", caPath, filepath.Join(crlDir, "revoked.crl"))},
		{"crlclear", fmt.Sprintf("{mode: SIMPLE, sni: api.example.test, caCertificates: %s, caCrl: %s}", caPath, filepath.Join(crlDir, "clear.crl"))},
		{"api", "{mode: SIMPLE}"},
		{"skip", "{mode: SIMPLE, insecureSkipVerify: true}"},
		{"othername", "{mode: SIMPLE, sni: api.example.test}"},
		{"wrongsni", "{mode: SIMPLE, sni: wrong.example.test}"},
		{"san", "{mode: SIMPLE, sni: wrong.example.test, subjectAltNames: [api.example.test]}"},
	} {
		fmt.Fprintf(&cfg, egressTLS, h.name, port, h.tls)
	}
	writeFile(t, dir, "egress.yaml", cfg.String())
	xdsAddr := startControlPlane(t, dir)

	proxy := func(ip string) *http.Client {
		start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
			"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
			"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")
		u, _ := url.Parse("http://" + ip + ":15001")
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
	}
	get := func(c *http.Client, host string) (int, string, error) {
		resp, err := c.Get("http://" + host + ".example.test/")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	expect := func(t *testing.T, c *http.Client, host string, status int, body string) {
		t.Helper()
		eventually(t, 30*time.Second, host+" answers "+fmt.Sprint(status), func() error {
			st, b, err := get(c, host)
			if err != nil {
				return err
			}
			if st != status || (body != "" && b != body) {
				return fmt.Errorf("status %d body %q, want %d %q", st, b, status, body)
			}
			return nil
		})
	}

	t.Run("system roots without the server's CA", func(t *testing.T) {
		c := proxy(uniqueLoopback())
		// skip answers first: the configuration is in place when api refuses.
		expect(t, c, "skip", 200, "tls skip.example.test")
		st, b, err := get(c, "api")
		if err != nil || st != 503 {
			t.Errorf("api: status %d %q (%v), want 503: a server the system roots do not trust must be refused", st, b, err)
		}
	})
	t.Run("caCrl", func(t *testing.T) {
		c := proxy(uniqueLoopback())
		// crlclear answers first: the configuration is in place when crlrevoked refuses.
		expect(t, c, "crlclear", 200, "tls api.example.test")
		st, b, err := get(c, "crlrevoked")
		if err != nil || st != 503 {
			t.Errorf("crlrevoked: status %d %q (%v), want 503: the caCrl lists the server's certificate", st, b, err)
		}
	})
	t.Run("system roots with the server's CA", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", caPath)
		c := proxy(uniqueLoopback())
		expect(t, c, "api", 200, "tls api.example.test")
		expect(t, c, "othername", 200, "tls api.example.test")
		expect(t, c, "san", 200, "tls wrong.example.test")
		st, b, err := get(c, "wrongsni")
		if err != nil || st != 503 {
			t.Errorf("wrongsni: status %d %q (%v), want 503: the certificate does not name wrong.example.test", st, b, err)
		}
	})
}

// strictNoCertConfig: a server workload at %[1]s whose application is at
// %[2]s, under a mesh-wide PeerAuthentication STRICT.
const strictNoCertConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server, namespace: default}
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: server}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server, namespace: default}
spec: {address: %[1]s, labels: {app: server}, serviceAccount: server}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: server, namespace: default}
spec:
  workloadSelector: {labels: {app: server}}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %[2]s
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: %[3]s}
`

// TestStrictWithoutCertificateFailsClosed: a sidecar that has no workload
// certificate (no CA configured) under PeerAuthentication STRICT refuses
// plaintext and TLS alike and logs why; it used to serve plaintext. Under
// PERMISSIVE the same sidecar serves plaintext.
func TestStrictWithoutCertificateFailsClosed(t *testing.T) {
	app := versionServer(t, "app")
	ip := uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(strictNoCertConfig, ip, fmt.Sprintf("127.0.0.1:%d", app), "PERMISSIVE"))
	xdsAddr := startControlPlane(t, dir)
	proxy := start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~server-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=server", "--meta", "INTERCEPTION_MODE=NONE")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	get := func() error {
		resp, err := client.Get("http://" + ip + ":8080/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	eventually(t, 30*time.Second, "plaintext under PERMISSIVE", get)

	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(strictNoCertConfig, ip, fmt.Sprintf("127.0.0.1:%d", app), "STRICT"))
	eventually(t, 30*time.Second, "plaintext refused under STRICT", func() error {
		if err := get(); err == nil {
			return fmt.Errorf("plaintext request served")
		}
		return nil
	})
	// A TLS client gets no certificate either: the handshake fails.
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ip+":8080",
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio-peer-exchange", "istio"}})
	if err == nil {
		c.Close()
		t.Fatal("TLS handshake succeeded without a workload certificate")
	}
	waitLine(t, proxy, "no workload certificate", 10*time.Second)
}

// poolConfig: backend with one connection allowed and a pending queue of
// ten (Istio's connectionPool), and a VirtualService redirecting /old/ to
// /new/ with prefixRewrite.
const poolConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend, namespace: default}
spec:
  host: backend.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 0}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend, namespace: default}
spec:
  hosts: [backend.default.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /old/}}]
    redirect: {prefixRewrite: /new/}
  - route: [{destination: {host: backend.default.svc.cluster.local}}]
`

// TestConnectionPoolQueuesPendingRequests: with maxConnections 1 and
// http1MaxPendingRequests 10, five concurrent requests all succeed over the
// one connection, one after the other (they used to get an immediate 503
// but one). And redirect.prefixRewrite rewrites the path's prefix.
func TestConnectionPoolQueuesPendingRequests(t *testing.T) {
	var mu sync.Mutex
	active, peak := 0, 0
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		active++
		peak = max(peak, active)
		mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		active--
		mu.Unlock()
		io.WriteString(w, "ok")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	writeFile(t, dir, "pool.yaml", fmt.Sprintf(poolConfig, l.Addr().(*net.TCPAddr).Port))
	xdsAddr := startControlPlane(t, dir)
	ip := uniqueLoopback()
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")
	u, _ := url.Parse("http://" + ip + ":15001")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxConnsPerHost: 20},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, http.Header, error) {
		resp, err := client.Get("http://backend.default.svc.cluster.local:8000" + path)
		if err != nil {
			return 0, nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header, nil
	}
	eventually(t, 30*time.Second, "backend reachable", func() error {
		st, _, err := get("/")
		if err == nil && st != 200 {
			err = fmt.Errorf("status %d", st)
		}
		return err
	})

	statuses := make(chan int, 5)
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _, err := get("/")
			if err != nil {
				t.Error(err)
			}
			statuses <- st
		}()
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 200 {
			t.Errorf("concurrent request: status %d, want 200 (queued, not refused)", st)
		}
	}
	if peak != 1 {
		t.Errorf("backend saw %d requests at once, want 1 (maxConnections 1)", peak)
	}

	st, h, err := get("/old/page?x=1")
	if err != nil || st != 301 || !strings.HasSuffix(h.Get("Location"), "/new/page?x=1") {
		t.Errorf("redirect: status %d location %q (%v), want 301 to .../new/page?x=1", st, h.Get("Location"), err)
	}
}
