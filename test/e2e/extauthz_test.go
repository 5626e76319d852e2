package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
)

// extAuthzDenied is the body Istio's sample ext-authz server answers with.
const extAuthzDenied = "denied by ext_authz for not found header `x-ext-authz: allow` in the request"

// extAuthzServer is a test fixture standing in for Istio's sample external
// authorizer (samples/extauthz, image gcr.io/istio-testing/ext-authz),
// which cannot run here (no container runtime, no registry access). It
// speaks the real protocols Envoy speaks to it -- gRPC
// envoy.service.auth.v3.Authorization/Check and plain HTTP -- with the
// sample's logic: allow when the request has x-ext-authz: allow (and say
// so in x-ext-authz-check-result to the upstream), else 403 with
// x-ext-authz-check-result: denied and the sample's body.
type extAuthzServer struct {
	authv3.UnimplementedAuthorizationServer
	grpcChecks, httpChecks atomic.Int32
	lastPath               atomic.Value
}

func (s *extAuthzServer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.grpcChecks.Add(1)
	h := req.GetAttributes().GetRequest().GetHttp()
	s.lastPath.Store(h.GetPath())
	result := func(v string) []*corev3.HeaderValueOption {
		return []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-ext-authz-check-result", Value: v}}}
	}
	if h.GetHeaders()["x-ext-authz"] == "allow" {
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: result("allowed")}}}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_PERMISSION_DENIED)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Headers: result("denied"), Body: extAuthzDenied}}}, nil
}

func (s *extAuthzServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.httpChecks.Add(1)
	s.lastPath.Store(r.URL.RequestURI())
	if r.Header.Get("x-ext-authz") == "allow" {
		w.Header().Set("x-ext-authz-check-result", "allowed")
		return
	}
	w.Header().Set("x-ext-authz-check-result", "denied")
	w.WriteHeader(http.StatusForbidden)
	io.WriteString(w, extAuthzDenied)
}

// start serves HTTP and gRPC on loopback and returns their ports.
func (s *extAuthzServer) start(t *testing.T) (httpPort, grpcPort int) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, s)
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	return hl.Addr().(*net.TCPAddr).Port, gl.Addr().(*net.TCPAddr).Port
}

// extAuthzMeshConfig is the task's MeshConfig extensionProviders, plus
// providers whose service is down (closed by default, and failOpen).
const extAuthzMeshConfig = `extensionProviders:
- name: sample-ext-authz-grpc
  envoyExtAuthzGrpc:
    service: ext-authz.foo.svc.cluster.local
    port: 9000
- name: sample-ext-authz-http
  envoyExtAuthzHttp:
    service: ext-authz.foo.svc.cluster.local
    port: 8000
    includeRequestHeadersInCheck: ["x-ext-authz"]
    headersToUpstreamOnAllow: ["x-ext-authz-check-result"]
- name: down-closed
  envoyExtAuthzGrpc: {service: ext-authz-down.foo.svc.cluster.local, port: 9000, timeout: 1s}
- name: down-open
  envoyExtAuthzHttp: {service: ext-authz-down.foo.svc.cluster.local, port: 8000, failOpen: true, timeout: 1s}
`

// extAuthzServices: the authorizer (both ports on the fixture) and one
// whose endpoint nobody listens on.
const extAuthzServices = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz, namespace: foo}
spec:
  hosts: [ext-authz.foo.svc.cluster.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}, {number: 9000, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {http: %d, grpc: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz-down, namespace: foo}
spec:
  hosts: [ext-authz-down.foo.svc.cluster.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}, {number: 9000, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {http: %d, grpc: %d}}]
`

// extAuthzPolicy is the task's policy (selector app: web instead of
// httpbin): the external authorizer is asked about /headers only.
const extAuthzPolicy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  action: CUSTOM
  provider: {name: %s}
  rules:
  - to: [{operation: {paths: ["/headers"]}}]
`

// curlWeb sends GET path to the web sidecar with curl and an x-ext-authz
// header; it returns the status, the x-ext-authz-check-result header and
// the body.
func curlWeb(t *testing.T, addr, path, authz string) (int, string, string) {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "--max-time", "10", "-D", "-", "-H", "x-ext-authz: "+authz, "http://"+addr+path).Output()
	if err != nil {
		return 0, "", err.Error()
	}
	head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
	lines := strings.Split(head, "\n")
	code := 0
	fmt.Sscanf(lines[0], "HTTP/1.1 %d", &code)
	result := ""
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "x-ext-authz-check-result") {
			result = strings.TrimSpace(v)
		}
	}
	return code, result, body
}

// TestExtAuthzTask is Istio's "External Authorization" task
// (istio.io/latest/docs/tasks/security/authorization/authz-custom/)
// through real mastd and mast-proxy processes with curl as the client: a
// CUSTOM policy sends /headers to the authorizer named in MeshConfig
// extensionProviders, over gRPC and over HTTP; the authorizer's denial
// (403, its header and body) reaches the client as Envoy passes it on;
// paths the policy does not select are never checked; an authorizer that
// is down fails closed (403) unless the provider says failOpen; an unknown
// provider denies what the policy selects and mastd names the field.
func TestExtAuthzTask(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	authz := &extAuthzServer{}
	httpPort, grpcPort := authz.start(t)
	deadHTTP, deadGRPC := freeAddr(t), freeAddr(t)
	var deadHTTPPort, deadGRPCPort int
	fmt.Sscanf(deadHTTP[strings.LastIndexByte(deadHTTP, ':')+1:], "%d", &deadHTTPPort)
	fmt.Sscanf(deadGRPC[strings.LastIndexByte(deadGRPC, ':')+1:], "%d", &deadGRPCPort)

	app := headerServer(t)
	webIP := uniqueLoopback()
	dir, meshDir := t.TempDir(), t.TempDir()
	writeFile(t, meshDir, "mesh.yaml", extAuthzMeshConfig)
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(webWorkload, app, webIP))
	writeFile(t, dir, "ext-authz.yaml", fmt.Sprintf(extAuthzServices, httpPort, grpcPort, deadHTTPPort, deadGRPCPort))
	xdsAddr := freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--mesh-config", meshDir+"/mesh.yaml", "--xds-addr", xdsAddr,
		"--monitoring-addr", freeAddr(t), "--debounce-after", "10ms")
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~web-1.default~default.svc.cluster.local", webIP),
		"--xds-addr", xdsAddr, "--admin-addr", webIP+":15000", "--drain-period", "1s",
		"--labels", "app=web", "--meta", "INTERCEPTION_MODE=NONE")
	web := webIP + ":9080"

	expect := func(what, path, authz string, want int) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			if code, _, body := curlWeb(t, web, path, authz); code != want {
				return fmt.Errorf("status %d, want %d: %s", code, want, body)
			}
			return nil
		})
	}
	expect("the sidecar before any policy", "/headers", "deny", 200)

	for _, tc := range []struct {
		provider string
		checks   *atomic.Int32
	}{{"sample-ext-authz-grpc", &authz.grpcChecks}, {"sample-ext-authz-http", &authz.httpChecks}} {
		writeFile(t, dir, "policy.yaml", fmt.Sprintf(extAuthzPolicy, tc.provider))
		expect(tc.provider+": x-ext-authz: deny on /headers", "/headers", "deny", 403)
		code, result, body := curlWeb(t, web, "/headers", "deny")
		if code != 403 || result != "denied" || body != extAuthzDenied {
			t.Errorf("%s: denied request: %d, x-ext-authz-check-result %q, body %q", tc.provider, code, result, body)
		}
		code, _, body = curlWeb(t, web, "/headers?q=1", "allow")
		if code != 200 || !strings.Contains(body, `"x-ext-authz-check-result":"allowed"`) {
			t.Errorf("%s: allowed request: %d %s (the app must see the authorizer's header)", tc.provider, code, body)
		}
		if p, _ := authz.lastPath.Load().(string); p != "/headers?q=1" {
			t.Errorf("%s: the authorizer saw path %q", tc.provider, p)
		}
		before := tc.checks.Load()
		if code, _, body := curlWeb(t, web, "/ip", "deny"); code != 200 {
			t.Errorf("%s: /ip is not selected by the policy: %d %s", tc.provider, code, body)
		}
		if n := tc.checks.Load() - before; n != 0 {
			t.Errorf("%s: /ip was sent to the authorizer (%d checks)", tc.provider, n)
		}
	}

	// The authorizer is down: closed by default, open with failOpen.
	writeFile(t, dir, "policy.yaml", fmt.Sprintf(extAuthzPolicy, "down-closed"))
	expect("an unreachable authorizer fails closed", "/headers", "allow", 403)
	if code, _, _ := curlWeb(t, web, "/ip", "allow"); code != 200 {
		t.Errorf("down-closed: /ip (not selected): %d", code)
	}
	writeFile(t, dir, "policy.yaml", fmt.Sprintf(extAuthzPolicy, "down-open"))
	expect("an unreachable authorizer with failOpen lets requests through", "/headers", "deny", 200)

	// A provider MeshConfig does not define: what the policy selects is
	// denied, and mastd names the field.
	writeFile(t, dir, "policy.yaml", fmt.Sprintf(extAuthzPolicy, "sample-ext-authz-grpcc"))
	expect("an unknown provider denies what the policy selects", "/headers", "allow", 403)
	if code, _, body := curlWeb(t, web, "/headers", "allow"); body != "RBAC: access denied" {
		t.Errorf("unknown provider: %d %q, want RBAC: access denied", code, body)
	}
	if code, _, _ := curlWeb(t, web, "/ip", "allow"); code != 200 {
		t.Errorf("unknown provider: /ip (not selected): %d", code)
	}
	eventually(t, 10*time.Second, "mastd naming the unknown provider's field", func() error {
		for _, l := range strings.Split(mastd.Output(), "\n") {
			if strings.Contains(l, "AuthorizationPolicy/default/ext-authz: spec.provider.name: extension provider") && strings.Contains(l, "sample-ext-authz-grpcc") {
				return nil
			}
		}
		return fmt.Errorf("not logged")
	})
}
