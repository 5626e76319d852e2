package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// passthroughConfig: two TLS services outside the mesh, a gateway with a
// TLS PASSTHROUGH server on port 8443 and a VirtualService routing by SNI
// (bound to the gateway and to the mesh: old.a.example.com is an alias of
// a), and a Sidecar giving the client workload a local TLS port on its own
// address for both services.
const passthroughConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8443, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.1, ports: {tls: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: default}
spec:
  hosts: [b.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8443, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.1, ports: {tls: %d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: tls, protocol: TLS}
    hosts: [a.example.com, b.example.com, old.a.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-sni, namespace: default}
spec:
  hosts: [a.example.com, b.example.com, old.a.example.com]
  gateways: [edge, mesh]
  tls:
  - match: [{sniHosts: [a.example.com, old.a.example.com]}]
    route: [{destination: {host: a.example.com}}]
  - match: [{sniHosts: [b.example.com]}]
    route: [{destination: {host: b.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 8443, protocol: TLS, name: tls}
    bind: %[3]s
    hosts: ["*/a.example.com", "*/b.example.com"]
`

// tlsBackend serves TLS with a self-signed certificate for name and, after
// the handshake, writes one line naming itself.
func tlsBackend(t *testing.T, name string) int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				fmt.Fprintf(c, "hello from %s\n", name)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// tlsHello connects to addr with SNI sni and returns the common name of the
// certificate the far end presented and the line it wrote.
func tlsHello(addr, sni string) (cn, line string, err error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{
		ServerName: sni,
		// The test checks which certificate comes back, not who signed it.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", "", errors.New("no certificate")
	}
	line, err = bufio.NewReader(c).ReadString('\n')
	return certs[0].Subject.CommonName, strings.TrimSpace(line), err
}

// TestTLSPassthroughBySNI: two TLS backends with different certificates
// behind one gateway port (PASSTHROUGH, routed by a VirtualService's tls
// routes) and behind one local TLS port of a sidecar without capture
// (a Sidecar egress listener with protocol TLS). A client asking for
// a.example.com or b.example.com gets the certificate of that backend, end
// to end (the proxies never terminate TLS); an alias SNI follows its
// route; an unknown SNI and a ClientHello without SNI are refused.
func TestTLSPassthroughBySNI(t *testing.T) {
	a, b := tlsBackend(t, "a.example.com"), tlsBackend(t, "b.example.com")
	clientIP, gatewayIP := uniqueLoopback(), uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(passthroughConfig, a, b, clientIP))
	xdsAddr := startControlPlane(t, dir)
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("router~%s~ingress-1.istio-system~istio-system.svc.cluster.local", gatewayIP),
		"--xds-addr", xdsAddr, "--admin-addr", gatewayIP+":15000", "--drain-period", "1s",
		"--labels", "istio=ingressgateway", "--meta", "INTERCEPTION_MODE=NONE")
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", clientIP),
		"--xds-addr", xdsAddr, "--admin-addr", clientIP+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")

	for _, via := range []struct{ name, addr string }{
		{"gateway", gatewayIP + ":8443"},
		{"sidecar local port", clientIP + ":8443"},
	} {
		t.Run(via.name, func(t *testing.T) {
			eventually(t, 30*time.Second, "reaching a.example.com through "+via.addr, func() error {
				_, _, err := tlsHello(via.addr, "a.example.com")
				return err
			})
			tests := []struct{ sni, want string }{
				{"a.example.com", "a.example.com"},
				{"b.example.com", "b.example.com"},
				{"A.Example.COM", "a.example.com"},
				{"old.a.example.com", "a.example.com"}, // the VirtualService's alias
			}
			for _, tt := range tests {
				cn, line, err := tlsHello(via.addr, tt.sni)
				if err != nil || cn != tt.want || line != "hello from "+tt.want {
					t.Errorf("SNI %s: certificate %q, line %q, %v; want %s", tt.sni, cn, line, err, tt.want)
				}
			}
			for _, sni := range []string{"c.example.com", "example.com", ""} {
				if cn, _, err := tlsHello(via.addr, sni); err == nil {
					t.Errorf("SNI %q: connected to %s; want the connection refused", sni, cn)
				}
			}
		})
	}
}
