package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/testnet"
)

// subnetsConfig: db.example.com (TCP) and a.example.com (TLS) outside the
// mesh; one, two and three are the plain HTTP backends and tls-one and
// tls-two the TLS backends the routes pick. A gateway serves db on a TCP
// port and a.example.com on a PASSTHROUGH port, both on 0.0.0.0; the client
// workload's Sidecar gives it each service's port bound to 0.0.0.0 too (Istio
// allows one IP-bound egress listener per port). The VirtualServices, bound
// to the gateway and the mesh, route by destination address (%[8]s, A) and
// source address (%[10]s, S); %[9]s (B) is another destination.
const subnetsConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: %[6]d, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[3]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: one, namespace: default}
spec:
  hosts: [one.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9001, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: two, namespace: default}
spec:
  hosts: [two.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9002, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[2]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: %[7]d, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.1, ports: {tls: %[5]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-one, namespace: default}
spec:
  hosts: [tls-one.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9443, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.1, ports: {tls: %[4]d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %[11]d, name: tcp, protocol: TCP}
    hosts: [db.example.com]
  - port: {number: %[12]d, name: tls, protocol: TLS}
    hosts: [a.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  gateways: [edge, mesh]
  tcp:
  - match: [{destinationSubnets: [%[8]s/32]}]
    route: [{destination: {host: one.example.com, port: {number: 9001}}}]
  - match: [{sourceSubnet: %[10]s}]
    route: [{destination: {host: two.example.com, port: {number: 9002}}}]
  - route: [{destination: {host: db.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  gateways: [edge, mesh]
  tls:
  - match: [{sniHosts: [a.example.com], destinationSubnets: [%[8]s]}]
    route: [{destination: {host: tls-one.example.com, port: {number: 9443}}}]
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: a.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: %[6]d, protocol: TCP, name: tcp}
    bind: 0.0.0.0
    hosts: ["*/*"]
  - port: {number: %[7]d, protocol: TLS, name: tls}
    bind: 0.0.0.0
    hosts: ["*/*"]
`

// freePorts returns n TCP ports free on every address now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	return testnet.FreePorts(t, n)
}

// curlFrom fetches http://dst/ with curl from source address src.
func curlFrom(src, dst string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "5", "--interface", src, "http://"+dst+"/").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("curl --interface %s http://%s/: %v: %s", src, dst, err, out)
	}
	return string(out), nil
}

// opensslHello connects to addr with openssl s_client and SNI sni, and
// returns what the far end wrote.
func opensslHello(addr, sni string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr, "-servername", sni, "-quiet")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || len(out) == 0 {
		return "", fmt.Errorf("openssl s_client -connect %s -servername %s: %v: %s", addr, sni, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// TestL4SubnetsEndToEnd: TCP destinationSubnets and sourceSubnet and TLS
// destinationSubnets, from Istio YAML through real mastd and real
// mast-proxy processes, on a gateway (one 0.0.0.0 listener per port: the
// address a connection arrived at is its destination) and on a sidecar
// without capture (a Sidecar egress listener per port bound to 0.0.0.0). curl
// picks its source address with --interface; openssl s_client sends the
// SNI. The rules must take only the connections they match: connections to
// B, or from another source than S, take the next route. Dropping a
// condition (istiod drops them on gateways) sends everything to the first
// route; widening one sends B's connections there; both fail.
func TestL4SubnetsEndToEnd(t *testing.T) {
	for _, bin := range []string{"curl", "openssl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	one, two, three := versionServer(t, "one"), versionServer(t, "two"), versionServer(t, "three")
	tlsOne, tlsTwo := tlsBackend(t, "tls-one"), tlsBackend(t, "tls-two")
	ports := freePorts(t, 4)
	dbPort, tlsPort, gwTCP, gwTLS := ports[0], ports[1], ports[2], ports[3]
	a, b, s, other := uniqueLoopback(), uniqueLoopback(), uniqueLoopback(), uniqueLoopback()
	clientIP, gatewayIP := uniqueLoopback(), uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(subnetsConfig, one, two, three, tlsOne, tlsTwo, dbPort, tlsPort, a, b, s, gwTCP, gwTLS))
	xdsAddr := startControlPlane(t, dir)
	// Without INTERCEPTION_MODE NONE the gateway binds 0.0.0.0, as in a pod.
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("router~%s~ingress-1.istio-system~istio-system.svc.cluster.local", gatewayIP),
		"--xds-addr", xdsAddr, "--admin-addr", gatewayIP+":15000", "--drain-period", "1s",
		"--labels", "istio=ingressgateway")
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", clientIP),
		"--xds-addr", xdsAddr, "--admin-addr", clientIP+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")

	hostPort := func(ip string, port int) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }
	for _, via := range []struct {
		name       string
		tcp, tls   int
		readyCheck string
	}{
		{"gateway", gwTCP, gwTLS, hostPort(b, gwTCP)},
		{"sidecar bound egress", dbPort, tlsPort, hostPort(b, dbPort)},
	} {
		t.Run(via.name, func(t *testing.T) {
			eventually(t, 30*time.Second, "reaching db through "+via.readyCheck, func() error {
				got, err := curlFrom(other, via.readyCheck)
				if err == nil && got != "three" {
					err = fmt.Errorf("got %q", got)
				}
				return err
			})
			for _, tt := range []struct {
				name, src, dst, want string
			}{
				{"destinationSubnets match", other, a, "one"},
				{"destinationSubnets match from the sourceSubnet", s, a, "one"},
				{"sourceSubnet match", s, b, "two"},
				{"neither", other, b, "three"},
			} {
				got, err := curlFrom(tt.src, hostPort(tt.dst, via.tcp))
				if err != nil || got != tt.want {
					t.Errorf("tcp %s: from %s to %s: %q, %v; want %q", tt.name, tt.src, tt.dst, got, err, tt.want)
				}
			}
			for _, tt := range []struct{ name, dst, want string }{
				{"destinationSubnets match", a, "hello from tls-one"},
				{"other destination", b, "hello from tls-two"},
			} {
				got, err := opensslHello(hostPort(tt.dst, via.tls), "a.example.com")
				if err != nil || got != tt.want {
					t.Errorf("tls %s: to %s: %q, %v; want %q", tt.name, tt.dst, got, err, tt.want)
				}
			}
		})
	}
}
