package e2e

import (
	"context"
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
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/mast-mesh/mast/internal/ca"
)

// mtlsMesh is mastd (xDS, and the CA unless an external one is given) with
// two sidecars on loopback addresses of their own: "client" and "server",
// the server's application being a Go HTTP server that echoes the
// x-forwarded-client-cert header it receives.
type mtlsMesh struct {
	t          *testing.T
	configDir  string
	caDir      string
	caAddr     string
	monAddr    string // mastd's monitoring (debug) address
	net        string // 127.X.Y
	serverIP   string
	clientIP   string
	appAddr    string
	client     *http.Client // through the client sidecar's HTTP proxy
	proxies    map[string]*process
	mastd      *process
	appHeaders atomic.Pointer[http.Header]
}

const mtlsConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server, namespace: default}
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: server}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server, namespace: default}
spec:
  address: %[1]s
  labels: {app: server}
  serviceAccount: server
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: default}
spec:
  address: %[2]s
  labels: {app: client}
  serviceAccount: client
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: server, namespace: default}
spec:
  workloadSelector:
    labels: {app: server}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %[3]s
`

// startMTLSMesh starts the mesh. With caAddr empty mastd runs the CA in
// caDir (and tokens are issued from it first, as mast up does); else the
// proxies use the CA at caAddr whose state is in caDir. extraProxyArgs are
// added to both proxies (e.g. --cert-ttl).
func startMTLSMesh(t *testing.T, caDir, caAddr string, extraProxyArgs ...string) *mtlsMesh {
	t.Helper()
	m := &mtlsMesh{t: t, configDir: t.TempDir(), caDir: caDir, proxies: map[string]*process{}}
	m.net = fmt.Sprintf("127.%d.%d", 100+mrand.IntN(100), 1+mrand.IntN(250))
	m.serverIP, m.clientIP = m.net+".1", m.net+".2"
	app := m.startApp()
	m.appAddr = app
	writeFile(t, m.configDir, "mesh.yaml", fmt.Sprintf(mtlsConfig, m.serverIP, m.clientIP, app))

	if m.caDir == "" {
		m.caDir = t.TempDir()
	}
	c, err := ca.New(ca.Config{Dir: m.caDir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, sa := range []string{"server", "client"} {
		id, _ := c.WorkloadID("default", sa)
		tok, err := c.IssueToken(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), sa+".jwt")
		if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		tokens[sa] = p
	}

	xdsAddr, monAddr := freeAddr(t), freeAddr(t)
	m.monAddr = monAddr
	args := []string{"--config", m.configDir, "--xds-addr", xdsAddr, "--monitoring-addr", monAddr, "--ratelimit-addr", freeAddr(t)}
	m.caAddr = caAddr
	if caAddr == "" {
		m.caAddr = freeAddr(t)
		args = append(args, "--ca-dir", m.caDir, "--secure-xds-addr", m.caAddr)
	}
	mastd := start(t, "mastd", args...)
	m.mastd = mastd
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	// xDS over mTLS to mastd's 15012 when mastd runs the CA; with a CA of
	// the test's own (no ADS there), plaintext to mastd on loopback.
	xdsArgs := []string{"--xds-addr", m.caAddr}
	if caAddr != "" {
		xdsArgs = []string{"--xds-addr", xdsAddr, "--xds-tls=false"}
	}

	for name, ip := range map[string]string{"server": m.serverIP, "client": m.clientIP} {
		pargs := []string{"--node-id", fmt.Sprintf("sidecar~%s~%s.default~default.svc.cluster.local", ip, name),
			"--admin-addr", "127.0.0.1:0", "--labels", "app=" + name, "--meta", "INTERCEPTION_MODE=NONE", "--meta", "SERVICE_ACCOUNT=" + name,
			"--drain-period", "1s", "--ca-addr", m.caAddr, "--ca-root-file", filepath.Join(m.caDir, "root-cert.pem"), "--token-file", tokens[name]}
		pargs = append(append(pargs, xdsArgs...), extraProxyArgs...)
		m.proxies[name] = start(t, "mast-proxy", pargs...)
	}
	proxyURL, _ := url.Parse("http://" + m.clientIP + ":15001")
	m.client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	return m
}

// startApp runs the server's application on 127.0.0.1.
func (m *mtlsMesh) startApp() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		m.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		m.appHeaders.Store(&h)
		w.Header().Set("x-app-saw-xfcc", r.Header.Get("X-Forwarded-Client-Cert"))
		io.WriteString(w, "hello from server")
	})}
	go srv.Serve(l)
	m.t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// viaSidecar sends GET http://server:8080/ through the client sidecar and
// returns the status and the XFCC header the application saw.
func (m *mtlsMesh) viaSidecar() (int, string, error) {
	resp, err := m.client.Get("http://server:8080/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && string(body) != "hello from server" {
		return 0, "", fmt.Errorf("body %q", body)
	}
	return resp.StatusCode, resp.Header.Get("x-app-saw-xfcc"), nil
}

// direct sends a plaintext request straight to the server sidecar's port.
func (m *mtlsMesh) direct() error {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + m.serverIP + ":8080/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// setPeerAuthentication writes a mesh-wide PeerAuthentication with mode.
func (m *mtlsMesh) setPeerAuthentication(mode string) {
	writeFile(m.t, m.configDir, "peer-authentication.yaml", fmt.Sprintf(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: %s}
`, mode))
}

// foreignCert is a SPIFFE certificate of the right trust domain signed by
// a root the mesh does not trust; written as PEM files for openssl too.
func foreignCert(t *testing.T) (tls.Certificate, string, string) {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "foreign root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, _ := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	root, _ := x509.ParseCertificate(rootDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("spiffe://cluster.local/ns/default/sa/client")
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, URIs: []*url.URL{u}},
		root, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}, certPath, keyPath
}

// tlsRequest speaks TLS 1.3 with Istio's ALPN to addr presenting cert and
// sends a request; it returns an error when the server refuses.
func tlsRequest(addr string, cert *tls.Certificate) error {
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1", "istio-peer-exchange", "istio"}}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: server\r\n\r\n"); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		return fmt.Errorf("answer %q", buf[:n])
	}
	return nil
}

// opensslRefused runs openssl s_client against addr (with cert and key
// when given) and reports whether the server refused the handshake.
func opensslRefused(t *testing.T, addr, cert, key string) (bool, string) {
	t.Helper()
	args := []string{"s_client", "-connect", addr, "-tls1_3", "-alpn", "istio-peer-exchange,istio", "-ign_eof"}
	if cert != "" {
		args = append(args, "-cert", cert, "-key", key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Stdin = strings.NewReader("GET / HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n")
	out, _ := cmd.CombinedOutput()
	s := string(out)
	// A refused client sees an alert and never the application's answer.
	return strings.Contains(s, "alert") && !strings.Contains(s, "hello from server"), s
}

// TestMTLSPeerAuthenticationModes runs real mastd (with its CA) and two
// mast-proxy sidecars and switches the mesh-wide PeerAuthentication:
// STRICT serves mTLS only (plaintext, a foreign certificate and no
// certificate are refused, also with openssl s_client), PERMISSIVE serves
// both on the same port, DISABLE plaintext only; auto mTLS follows.
func TestMTLSPeerAuthenticationModes(t *testing.T) {
	m := startMTLSMesh(t, "", "")
	serverAddr := m.serverIP + ":8080"
	const clientID = "URI=spiffe://cluster.local/ns/default/sa/client"

	// PERMISSIVE (Istio's default): mTLS between sidecars, plaintext too.
	eventually(t, 60*time.Second, "mTLS through the sidecars (PERMISSIVE)", func() error {
		code, xfcc, err := m.viaSidecar()
		if err != nil || code != 200 {
			return fmt.Errorf("status %d, %v", code, err)
		}
		if !strings.Contains(xfcc, clientID) {
			return fmt.Errorf("application saw x-forwarded-client-cert %q, want the client's identity", xfcc)
		}
		return nil
	})
	if err := m.direct(); err != nil {
		t.Fatalf("PERMISSIVE refused plaintext: %v", err)
	}

	m.setPeerAuthentication("STRICT")
	eventually(t, 30*time.Second, "STRICT refusing plaintext", func() error {
		if err := m.direct(); err == nil {
			return fmt.Errorf("plaintext still served")
		}
		return nil
	})
	if code, xfcc, err := m.viaSidecar(); err != nil || code != 200 || !strings.Contains(xfcc, clientID) {
		t.Fatalf("STRICT: through the sidecars: %d %q %v", code, xfcc, err)
	}
	foreign, certPath, keyPath := foreignCert(t)
	if err := tlsRequest(serverAddr, &foreign); err == nil {
		t.Fatal("STRICT accepted a certificate from a foreign root")
	}
	if err := tlsRequest(serverAddr, nil); err == nil {
		t.Fatal("STRICT accepted a client without a certificate")
	}
	if _, err := exec.LookPath("openssl"); err == nil {
		if refused, out := opensslRefused(t, serverAddr, certPath, keyPath); !refused {
			t.Fatalf("openssl s_client with a foreign certificate was not refused:\n%s", out)
		}
		if refused, out := opensslRefused(t, serverAddr, "", ""); !refused {
			t.Fatalf("openssl s_client without a certificate was not refused:\n%s", out)
		}
	} else {
		t.Log("openssl not installed: s_client checks skipped")
	}

	m.setPeerAuthentication("DISABLE")
	eventually(t, 30*time.Second, "DISABLE serving plaintext and the client falling back to it", func() error {
		if err := m.direct(); err != nil {
			return err
		}
		code, xfcc, err := m.viaSidecar()
		if err != nil || code != 200 {
			return fmt.Errorf("status %d, %v", code, err)
		}
		if xfcc != "" {
			return fmt.Errorf("still mTLS: x-forwarded-client-cert %q", xfcc)
		}
		return nil
	})
	if err := tlsRequest(serverAddr, &foreign); err == nil {
		t.Fatal("DISABLE terminated TLS")
	}
}

// TestMTLSRotationUnderLoad: with 2-minute certificates, a bounded load
// runs across at least three certificate rotations of each sidecar and one
// whole root rotation (trust, switch, retire) with zero failed requests.
// It takes about five minutes: set MAST_LONG_TESTS=1.
func TestMTLSRotationUnderLoad(t *testing.T) {
	if os.Getenv("MAST_LONG_TESTS") != "1" {
		t.Skip("takes about five minutes; set MAST_LONG_TESTS=1")
	}
	// The CA runs here, with mastd's code, so that the test can rotate its
	// root while the proxies use it over gRPC+TLS.
	caDir := t.TempDir()
	authority, err := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local", DefaultTTL: 2 * time.Minute, MaxTTL: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := authority.ServerTLSConfig("istiod.istio-system.svc", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	authority.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)

	m := startMTLSMesh(t, caDir, lis.Addr().String(), "--cert-ttl", "2m")
	m.setPeerAuthentication("STRICT")
	// New upstream connections (handshakes) all along: at most 20 requests each.
	writeFile(t, m.configDir, "dr.yaml", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server, namespace: default}
spec:
  host: server.default.svc.cluster.local
  trafficPolicy:
    connectionPool: {http: {maxRequestsPerConnection: 20}}
`)
	eventually(t, 60*time.Second, "mTLS through the sidecars", func() error {
		if err := m.direct(); err == nil {
			return fmt.Errorf("STRICT not applied yet")
		}
		code, _, err := m.viaSidecar()
		if err != nil || code != 200 {
			return fmt.Errorf("status %d, %v", code, err)
		}
		return nil
	})

	const (
		workers     = 4
		propagation = 75 * time.Second  // > the longest renewal interval (60s)
		overlap     = 225 * time.Second // propagation + leaf lifetime + margin
	)
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, err := m.viaSidecar()
				if err != nil || code != 200 {
					failed.Add(1)
					msg := fmt.Sprintf("%s: status %d, %v", time.Now().Format(time.TimeOnly), code, err)
					firstErr.CompareAndSwap(nil, &msg)
				} else {
					ok.Add(1)
				}
				time.Sleep(5 * time.Millisecond) // bounded load
			}
		}()
	}
	start := time.Now()
	time.Sleep(30 * time.Second)
	rot, err := authority.RotateRoot(ca.RotateOptions{Propagation: propagation, Overlap: overlap})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("root rotation: switch at +%v, retire at +%v", rot.SwitchAt.Sub(start).Round(time.Second), rot.RetireAt.Sub(start).Round(time.Second))
	time.Sleep(time.Until(rot.RetireAt) + 30*time.Second)
	close(stop)
	wg.Wait()

	for name, p := range m.proxies {
		if n := strings.Count(p.Output(), "certificate issued"); n < 4 {
			t.Errorf("%s: %d certificates issued, want the first and at least three rotations", name, n)
		}
	}
	if n := len(authority.TrustBundle()); n != 1 || !authority.TrustBundle()[0].Equal(rot.NewRoot) {
		t.Errorf("after retirement the bundle has %d roots, want only the new one", n)
	}
	t.Logf("%d requests in %v, %d failed", ok.Load(), time.Since(start).Round(time.Second), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed; first: %s", failed.Load(), failed.Load()+ok.Load(), *firstErr.Load())
	}
}

// TestLocalMeshBookinfoMTLS: `mast up` runs Bookinfo with mTLS on by
// default: every proxy has a certificate, and with a mesh-wide STRICT
// PeerAuthentication (Istio's own file) every page still renders with
// reviews and ratings, while plaintext to a sidecar is refused.
func TestLocalMeshBookinfoMTLS(t *testing.T) {
	m := startMesh(t)
	if !strings.Contains(m.up.Output(), "mastd CA") {
		t.Fatalf("mast up did not start the CA:\n%s", m.up.Output())
	}
	dir := t.TempDir()
	writeFile(t, dir, "strict.yaml", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
`)
	m.apply(filepath.Join(dir, "strict.yaml"))
	// reviews-v1 (127.0.1.3): a sidecar's port refuses plaintext ...
	eventually(t, 30*time.Second, "STRICT on the reviews sidecar", func() error {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get("http://127.0.1.3:9080/reviews/0")
		if err == nil {
			resp.Body.Close()
			return fmt.Errorf("plaintext answered %s", resp.Status)
		}
		return nil
	})
	// ... while the gateway and the sidecars speak mTLS to each other.
	client := &http.Client{Timeout: 30 * time.Second}
	for i := 0; i < 20; i++ {
		page := m.page(client)
		if !strings.Contains(page, "Book Details") || !instanceRE.MatchString(page) {
			t.Fatalf("page %d lacks details or reviews:\n%s", i, page)
		}
		if strings.Contains(page, "unavailable") {
			t.Fatalf("page %d says a service is unavailable:\n%s", i, page)
		}
	}
}
