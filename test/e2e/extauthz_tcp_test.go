package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/testnet"
)

// tcpAuthzServer is an external authorizer speaking Envoy's gRPC
// Authorization/Check for connections: it allows the source principals in
// allow and records what it was asked.
type tcpAuthzServer struct {
	authv3.UnimplementedAuthorizationServer
	mu     sync.Mutex
	allow  map[string]bool
	checks []*authv3.CheckRequest
}

func (s *tcpAuthzServer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, req)
	if s.allow[req.GetAttributes().GetSource().GetPrincipal()] {
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_OK)}}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_PERMISSION_DENIED)}}, nil
}

func (s *tcpAuthzServer) setAllow(principals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allow = map[string]bool{}
	for _, p := range principals {
		s.allow[p] = true
	}
}

func (s *tcpAuthzServer) seen() []*authv3.CheckRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*authv3.CheckRequest(nil), s.checks...)
}

// extAuthzTCPMesh: a gRPC provider (the fixture), an HTTP provider (Envoy
// has no network check over HTTP), and a gRPC provider that is down,
// closed and failOpen.
const extAuthzTCPMesh = `extensionProviders:
- name: tcp-authz
  envoyExtAuthzGrpc: {service: ext-authz.foo.svc.cluster.local, port: 9000, timeout: 2s}
- name: tcp-authz-http
  envoyExtAuthzHttp: {service: ext-authz.foo.svc.cluster.local, port: 8000}
- name: down-closed
  envoyExtAuthzGrpc: {service: ext-authz-down.foo.svc.cluster.local, port: 9000, timeout: 1s}
- name: down-open
  envoyExtAuthzGrpc: {service: ext-authz-down.foo.svc.cluster.local, port: 9000, timeout: 1s, failOpen: true}
`

// extAuthzTCPPolicy selects db's connections to port %[2]s and sends them
// to provider %[1]s (Istio's validation refuses source principals and
// namespaces in CUSTOM rules; the authorizer decides on the principal).
const extAuthzTCPPolicy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-ext-authz, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  action: CUSTOM
  provider: {name: %[1]s}
  rules:
  - to: [{operation: {ports: ["%[2]s"]}}]
`

// curlTCP sends a line through addr with curl's telnet client and returns
// what came back before the connection closed or 2 s passed.
func curlTCP(t *testing.T, addr string) string {
	t.Helper()
	cmd := exec.Command("curl", "-sS", "--max-time", "2", "telnet://"+addr)
	cmd.Stdin = strings.NewReader("ping\n")
	out, _ := cmd.Output() // 28 (time-out) when the connection stays open
	return string(out)
}

// TestExtAuthzTCP: a CUSTOM AuthorizationPolicy on a TCP port through real
// mastd (with its CA) and two real sidecars, with curl's telnet client
// reaching db through the client sidecar over Istio mTLS. The server
// sidecar asks the gRPC authorizer about the connections the policy's
// rules select, with the source principal of the client sidecar's
// certificate, and the authorizer decides on it; a denial closes the
// connection; connections the rules do not select are never checked; a down authorizer closes unless failOpen; an
// HTTP provider (which cannot check a connection) denies what the rules
// select.
func TestExtAuthzTCP(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	authz := &tcpAuthzServer{}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, authz)
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	grpcPort := gl.Addr().(*net.TCPAddr).Port
	var deadPort int
	dead := freeAddr(t)
	fmt.Sscanf(dead[strings.LastIndexByte(dead, ':')+1:], "%d", &deadPort)

	app := tcpEcho(t)
	dbIP, clientIP := uniqueLoopback(), uniqueLoopback()
	dir, meshDir := t.TempDir(), t.TempDir()
	writeFile(t, meshDir, "mesh.yaml", extAuthzTCPMesh)
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(tcpExchangeConfig, dbIP, clientIP, app))
	writeFile(t, dir, "ext-authz.yaml", fmt.Sprintf(extAuthzServices, freePort(t), grpcPort, deadPort, deadPort))
	caDir := t.TempDir()
	c, err := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, sa := range []string{"db", "client"} {
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
	secure := freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--mesh-config", meshDir+"/mesh.yaml", "--xds-addr", freeAddr(t),
		"--monitoring-addr", freeAddr(t), "--ca-dir", caDir, "--secure-xds-addr", secure, "--debounce-after", "10ms",
		"--components", "pilot,galley") // the rate-limit service would bind a fixed port
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	for _, s := range []struct{ name, ip, wl string }{{"db", dbIP, "db-1"}, {"client", clientIP, "client-1"}} {
		start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~%s.default~default.svc.cluster.local", s.ip, s.wl),
			"--xds-addr", secure, "--admin-addr", "127.0.0.1:0", "--drain-period", "1s",
			"--labels", "app="+s.name, "--meta", "INTERCEPTION_MODE=NONE", "--meta", "SERVICE_ACCOUNT="+s.name,
			"--meta", "WORKLOAD_NAME="+s.wl, "--ca-addr", secure, "--ca-root-file", filepath.Join(caDir, "root-cert.pem"), "--token-file", tokens[s.name])
	}
	addr := clientIP + ":5432"
	const client = "spiffe://cluster.local/ns/default/sa/client"
	through := func(what string, want bool) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			got := strings.Contains(curlTCP(t, addr), "echo: ping")
			if got != want {
				return fmt.Errorf("connection through: %v, want %v", got, want)
			}
			return nil
		})
	}
	through("curl through both sidecars before any policy", true)

	// The rule selects the client's principal: the authorizer decides.
	authz.setAllow(client)
	writeFile(t, dir, "policy.yaml", fmt.Sprintf(extAuthzTCPPolicy, "tcp-authz", "5432"))
	eventually(t, 30*time.Second, "the authorizer asked about the client's connection", func() error {
		if !strings.Contains(curlTCP(t, addr), "echo: ping") {
			return fmt.Errorf("allowed connection refused")
		}
		if len(authz.seen()) == 0 {
			return fmt.Errorf("no check yet")
		}
		return nil
	})
	seen := authz.seen()
	a := seen[len(seen)-1].GetAttributes()
	if a.GetSource().GetPrincipal() != client || a.GetDestination().GetAddress().GetSocketAddress().GetPortValue() != 5432 ||
		a.GetDestination().GetAddress().GetSocketAddress().GetAddress() != dbIP || a.GetRequest() != nil {
		t.Errorf("the check's attributes: %v", a)
	}
	authz.setAllow()
	through("the authorizer's denial closes the connection", false)

	// A rule that selects another port: the connection is never checked.
	writeFile(t, dir, "policy.yaml", fmt.Sprintf(extAuthzTCPPolicy, "tcp-authz", "6000"))
	through("a connection the CUSTOM rules do not select", true)
	before := len(authz.seen())
	for i := 0; i < 3; i++ {
		if !strings.Contains(curlTCP(t, addr), "echo: ping") {
			t.Error("an unselected connection was closed")
		}
	}
	if n := len(authz.seen()) - before; n != 0 {
		t.Errorf("unselected connections were checked %d times", n)
	}

	// The authorizer is down: closed, or open with failOpen.
	writeFile(t, dir, "policy.yaml", fmt.Sprintf(extAuthzTCPPolicy, "down-closed", "5432"))
	through("an unreachable authorizer fails closed", false)
	writeFile(t, dir, "policy.yaml", fmt.Sprintf(extAuthzTCPPolicy, "down-open", "5432"))
	through("an unreachable authorizer with failOpen lets connections through", true)

	// An HTTP provider cannot check a connection: Mast denies what the
	// rules select (istiod would leave the TCP chain unchecked).
	authz.setAllow(client)
	writeFile(t, dir, "policy.yaml", fmt.Sprintf(extAuthzTCPPolicy, "tcp-authz-http", "5432"))
	through("an HTTP provider's CUSTOM rules on TCP deny", false)
}

// freePort is a loopback port nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	return testnet.FreePort(t)
}
