package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/mast-mesh/mast/internal/h2spectest"
)

// h2Config: a gateway with an HTTP server on 8080 (h2c or HTTP/1.1) and
// an HTTPS server on 8443 (file certificates, ALPN h2 and http/1.1), both
// routed to the "server" service, whose sidecar's inbound port 8080 leads
// to a Go HTTP/1.1 application; /nocluster has no upstream (a local reply).
const h2Config = `
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
kind: Sidecar
metadata: {name: server, namespace: default}
spec:
  workloadSelector:
    labels: {app: server}
  ingress:
  - port: {number: 8080, protocol: HTTP, name: http}
    defaultEndpoint: %[2]s
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: %[3]s, privateKey: %[4]s}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: default}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - match: [{uri: {prefix: /nocluster}}]
    route: [{destination: {host: nowhere.default.svc.cluster.local}}]
  - route: [{destination: {host: server.default.svc.cluster.local, port: {number: 8080}}}]
`

// h2App answers like a small JSON API; / has a body long enough for
// h2spec's flow-control cases.
func h2App() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/empty":
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(200)
		case "/json":
			w.Header().Set("content-type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		default:
			w.Header().Set("content-type", "text/plain")
			io.WriteString(w, strings.Repeat("mast h2spec body\n", 64))
		}
	})
}

// writeCert writes a self-signed certificate for "example.com" and
// returns the certificate and key file paths.
func writeCert(t *testing.T) (string, string, tls.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cf, kf, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// h2Mesh is mastd, the gateway and the server's sidecar.
type h2Mesh struct {
	gwIP, serverIP string
	gateway        *process
}

func startH2Mesh(t *testing.T) *h2Mesh {
	t.Helper()
	n := fmt.Sprintf("127.%d.%d", 100+mrand.IntN(100), 1+mrand.IntN(250))
	m := &h2Mesh{gwIP: n + ".1", serverIP: n + ".2"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: h2App()}
	go app.Serve(l)
	t.Cleanup(func() { app.Close() })
	cf, kf, _ := writeCert(t)
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(h2Config, m.serverIP, l.Addr().String(), cf, kf))
	xds := startControlPlane(t, dir)
	m.gateway = start(t, "mast-proxy", "--type", "router", "--xds-addr", xds, "--admin-addr", "127.0.0.1:0", "--drain-period", "1s",
		"--node-id", fmt.Sprintf("router~%s~gw.default~default.svc.cluster.local", m.gwIP),
		"--labels", "istio=ingressgateway", "--meta", "INTERCEPTION_MODE=NONE")
	start(t, "mast-proxy", "--xds-addr", xds, "--admin-addr", "127.0.0.1:0", "--drain-period", "1s",
		"--node-id", fmt.Sprintf("sidecar~%s~server.default~default.svc.cluster.local", m.serverIP),
		"--labels", "app=server", "--meta", "INTERCEPTION_MODE=NONE")
	tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, u := range []string{"http://" + m.gwIP + ":8080/json", "https://" + m.gwIP + ":8443/json", "http://" + m.serverIP + ":8080/json"} {
		eventually(t, 30*time.Second, "GET "+u, func() error {
			resp, err := tc.Get(u)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
	return m
}

// goH2Server serves h2App with Go's own HTTP/2 server (h2c, or TLS with
// ALPN) as the reference.
func goH2Server(t *testing.T, useTLS bool) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2App(), ErrorLog: log.New(io.Discard, "", 0)}
	if useTLS {
		_, _, cert := writeCert(t)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		http2.ConfigureServer(srv, &http2.Server{})
		go srv.ServeTLS(l, "", "")
	} else {
		srv.Handler = h2c.NewHandler(h2App(), &http2.Server{})
		go srv.Serve(l)
	}
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// TestH2specGatewayAndSidecar runs h2spec (an HTTP/2 conformance client
// nobody here wrote) against the gateway over h2c and TLS and against a
// sidecar's inbound port over h2c, and against Go's own HTTP/2 server the
// same way: every case Go's server passes, Mast must pass too.
func TestH2specGatewayAndSidecar(t *testing.T) {
	bin := h2spectest.Bin(t)
	m := startH2Mesh(t)
	for _, tc := range []struct {
		name string
		addr string
		tls  bool
	}{
		{"gateway h2c", m.gwIP + ":8080", false},
		{"gateway TLS", m.gwIP + ":8443", true},
		{"sidecar h2c", m.serverIP + ":8080", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goPass, goFail := h2spectest.Run(t, bin, goH2Server(t, tc.tls), tc.tls)
			pass, fail := h2spectest.Run(t, bin, tc.addr, tc.tls)
			t.Logf("h2spec %s: Mast %d passed, %d failed; Go's server %d passed, %d failed", tc.name, len(pass), len(fail), len(goPass), len(goFail))
			var failed []string
			for name := range fail {
				failed = append(failed, name)
			}
			sort.Strings(failed)
			t.Logf("Mast's failing cases (Go's server fails them too unless listed below):\n  %s", strings.Join(failed, "\n  "))
			worse := h2spectest.Worse(t, goPass, pass, func() map[string]bool {
				again, _ := h2spectest.Run(t, bin, tc.addr, tc.tls)
				return again
			})
			if len(worse) > 0 {
				t.Errorf("%d cases Go's server passes fail on Mast:\n  %s", len(worse), strings.Join(worse, "\n  "))
			}
			if len(pass) == 0 {
				t.Fatal("h2spec passed nothing: did it reach the proxy?")
			}
		})
	}
}

// TestCurlHTTP2ThroughGateway: curl (with nghttp2) over --http2 (TLS, ALPN)
// and --http2-prior-knowledge (h2c) gets clean responses through the
// gateway for JSON, empty bodies and local replies: curl refuses a response
// with duplicate content-length (and exits non-zero).
func TestCurlHTTP2ThroughGateway(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install curl; .ci/run does)")
	}
	if out, _ := exec.Command(curl, "--version").Output(); !strings.Contains(string(out), "nghttp2") {
		t.Skip("curl without nghttp2 (Debian's curl has it)")
	}
	m := startH2Mesh(t)
	for _, tc := range []struct {
		mode, url  string
		wantStatus int
		wantBody   string
	}{
		{"--http2-prior-knowledge", "http://" + m.gwIP + ":8080/json", 200, `{"ok":true}`},
		{"--http2-prior-knowledge", "http://" + m.gwIP + ":8080/empty", 200, ""},
		{"--http2-prior-knowledge", "http://" + m.gwIP + ":8080/nocluster", 503, ""},
		{"--http2", "https://" + m.gwIP + ":8443/json", 200, `{"ok":true}`},
		{"--http2", "https://" + m.gwIP + ":8443/empty", 200, ""},
		{"--http2", "https://" + m.gwIP + ":8443/nocluster", 503, ""},
		{"--http2-prior-knowledge", "http://" + m.serverIP + ":8080/empty", 200, ""},
	} {
		t.Run(tc.mode+" "+tc.url, func(t *testing.T) {
			out, err := exec.Command(curl, "-sS", "-k", tc.mode, "--max-time", "10", "-D", "-", "-w", "\n%{http_version} %{http_code}", tc.url).CombinedOutput()
			if err != nil {
				t.Fatalf("curl failed: %v\n%s", err, out)
			}
			s := string(out)
			last := s[strings.LastIndexByte(s, '\n')+1:]
			if last != "2 "+strconv.Itoa(tc.wantStatus) {
				t.Fatalf("got %q, want HTTP/2 %d\n%s", last, tc.wantStatus, s)
			}
			head, body, _ := strings.Cut(s[:strings.LastIndexByte(s, '\n')], "\r\n\r\n")
			lower := strings.ToLower(head)
			for _, f := range []string{"content-type:", "content-length:", "date:"} {
				if n := strings.Count(lower, "\n"+f); n > 1 {
					t.Errorf("%d %s fields:\n%s", n, f, head)
				}
			}
			if tc.wantBody != "" && body != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
		})
	}
}
