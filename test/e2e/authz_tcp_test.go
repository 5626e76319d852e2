package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// authzTCPConfig: db (TCP 5432) behind a sidecar without capture at %[2]s,
// app at 127.0.0.1:%[1]d; a DENY policy for connections from %[3]s and an
// ALLOW policy whose only rule has an HTTP-only field (methods), which on
// TCP must match nothing -- so with it, everyone would be denied; it is
// applied in a second step.
const authzTCPConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: default}
spec: {address: %[2]s, ports: {tcp: 5432}, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: db, namespace: default}
spec:
  workloadSelector: {labels: {app: db}}
  ingress:
  - port: {number: 5432, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:%[1]d
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-bad-client, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["%[3]s/32"]}}]
    to: [{operation: {ports: ["5432"], methods: ["GET"]}}]
`

const authzTCPAllowHTTPOnly = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get-only, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules:
  - to: [{operation: {methods: ["GET"]}}]
`

// echoFrom dials addr from local address from and reports whether a line
// comes back through the TCP proxy.
func echoFrom(from, addr string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, "ping")
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no answer: %v", err)
	}
	if strings.TrimSpace(got) != "echo: ping" {
		return fmt.Errorf("answered %q", got)
	}
	return nil
}

// TestAuthzTCP: network RBAC on a sidecar's TCP inbound through real mastd
// and mast-proxy. A DENY rule with an HTTP-only field (methods) still
// denies by its TCP fields (Istio ignores the HTTP field in DENY rules);
// an ALLOW rule made only of an HTTP-only field matches nothing on TCP, so
// once it applies every connection is closed.
func TestAuthzTCP(t *testing.T) {
	app := tcpEcho(t)
	ip, bad, good := uniqueLoopback(), uniqueLoopback(), uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(authzTCPConfig, app, ip, bad))
	xdsAddr := startControlPlane(t, dir)
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~db-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=db", "--meta", "INTERCEPTION_MODE=NONE")
	addr := ip + ":5432"
	eventually(t, 30*time.Second, "an allowed client through the sidecar", func() error { return echoFrom(good, addr) })
	if err := echoFrom(bad, addr); err == nil {
		t.Fatalf("a client the DENY policy names got through")
	}
	writeFile(t, dir, "allow.yaml", authzTCPAllowHTTPOnly)
	eventually(t, 30*time.Second, "the HTTP-only ALLOW rule to deny every TCP connection", func() error {
		if err := echoFrom(good, addr); err == nil {
			return fmt.Errorf("still allowed")
		}
		return nil
	})
}
