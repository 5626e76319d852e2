package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// routeFeaturesConfig: shop (%[1]d) and audit (%[2]d) backends, and a
// VirtualService for shop that mirrors to audit: /never with
// mirrorPercentage 0, /both to audit twice through mirrors, everything
// else through mirror (100 %% by default); /hdr sets headers with Envoy's
// command operators.
const routeFeaturesConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: audit, namespace: default}
spec:
  hosts: [audit.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[2]d}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.default.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /never}}]
    route: [{destination: {host: shop.default.svc.cluster.local}}]
    mirror: {host: audit.default.svc.cluster.local}
    mirrorPercentage: {value: 0}
  - match: [{uri: {prefix: /both}}]
    route: [{destination: {host: shop.default.svc.cluster.local}}]
    mirrors:
    - destination: {host: audit.default.svc.cluster.local}
    - destination: {host: audit.default.svc.cluster.local}
      percentage: {value: 100}
  - match: [{uri: {prefix: /hdr}}]
    route: [{destination: {host: shop.default.svc.cluster.local}}]
    headers:
      request:
        set: {x-client-ip: "%%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%%", x-user: "user-%%REQ(x-name)%%", x-none: "%%REQ(x-absent)%%"}
      response:
        add: {x-served-by: "%%UPSTREAM_REMOTE_ADDRESS%%", x-proto: "%%PROTOCOL%%", x-discount: "100%%%%"}
  - match: [{uri: {prefix: /cors}}]
    route: [{destination: {host: shop.default.svc.cluster.local}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}, {regex: "https://.*\\.example\\.org"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-got-x-user]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
  - route: [{destination: {host: shop.default.svc.cluster.local}}]
    mirror: {host: audit.default.svc.cluster.local}
`

// copySeen is a request the audit backend (the mirror) received.
type copySeen struct{ host, path, body string }

// TestVirtualServiceMirroringAndHeaders: Istio's mirror, mirrors and
// mirrorPercentage through real mastd and mast-proxy. The copy goes to the
// mirror's service with "-shadow" appended to the host and the request's
// body; the primary answer reaches the client while the mirror still
// holds its copy (fire and forget); a 0 %% mirror sends nothing, and
// mirrors sends one copy per entry. Header values with Envoy's command
// operators are computed per request, as curl sees.
func TestVirtualServiceMirroringAndHeaders(t *testing.T) {
	shopL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	shopSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for _, h := range []string{"x-client-ip", "x-user", "x-none"} {
			if v, ok := r.Header[http.CanonicalHeaderKey(h)]; ok {
				w.Header().Set("x-got-"+h, strings.Join(v, ","))
			}
		}
		io.WriteString(w, "primary")
	})}
	go shopSrv.Serve(shopL)
	t.Cleanup(func() { shopSrv.Close() })
	shop := shopL.Addr().(*net.TCPAddr).Port
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	copies := make(chan copySeen, 16)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	audit := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		copies <- copySeen{r.Host, r.URL.Path, string(b)}
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "audit")
	})}
	go audit.Serve(l)
	t.Cleanup(func() { audit.Close() })

	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(routeFeaturesConfig, shop, l.Addr().(*net.TCPAddr).Port))
	xdsAddr := startControlPlane(t, dir)
	ip := uniqueLoopback()
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")
	u, _ := url.Parse("http://" + ip + ":15001")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
	send := func(method, path, body string) (int, string, error) {
		req, _ := http.NewRequest(method, "http://shop.default.svc.cluster.local:8000"+path, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	eventually(t, 30*time.Second, "shop reachable with its mirror", func() error {
		st, b, err := send("GET", "/ready", "")
		if err != nil || st != 200 || b != "primary" {
			return fmt.Errorf("status %d %q (%v)", st, b, err)
		}
		select {
		case <-copies:
			return nil
		case <-time.After(time.Second):
			return fmt.Errorf("no copy yet")
		}
	})
	drain := func() {
		for {
			select {
			case <-copies:
			case <-time.After(500 * time.Millisecond):
				return
			}
		}
	}
	drain()

	// The copy is held by the mirror; the client still gets its answer.
	st, b, err := send("POST", "/slow", "order-1")
	if err != nil || st != 200 || b != "primary" {
		t.Fatalf("primary while its copy is held: status %d %q (%v)", st, b, err)
	}
	select {
	case c := <-copies:
		if c.host != "shop.default.svc.cluster.local-shadow:8000" || c.path != "/slow" || c.body != "order-1" {
			t.Errorf("copy = %+v, want host shop.default.svc.cluster.local-shadow:8000, /slow, body order-1", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the mirror got no copy of /slow")
	}
	once.Do(func() { close(release) })

	// mirrorPercentage 0: no copy; mirrors: a copy per entry.
	for range 5 {
		if st, _, err := send("GET", "/never", ""); err != nil || st != 200 {
			t.Fatalf("/never: %d %v", st, err)
		}
	}
	if st, _, err := send("GET", "/both", ""); err != nil || st != 200 {
		t.Fatalf("/both: %d %v", st, err)
	}
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case c := <-copies:
			got = append(got, c.path)
		case <-timeout:
			t.Fatalf("copies seen %v, want /both twice", got)
		}
	}
	late := time.After(500 * time.Millisecond) // a late /never copy would show here
	for done := false; !done; {
		select {
		case c := <-copies:
			got = append(got, c.path)
		case <-late:
			done = true
		}
	}
	if strings.Join(got, ",") != "/both,/both" {
		t.Errorf("copies = %v, want /both twice and no /never", got)
	}

	// Header values with Envoy's command operators, seen by curl.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	curl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "-D", "-", "--max-time", "10", "-x", "http://" + ip + ":15001"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		return string(out)
	}
	out := curl("-o", "/dev/null", "-H", "x-name: jason", "http://shop.default.svc.cluster.local:8000/hdr")
	head := strings.ToLower(out)
	for _, want := range []string{
		"x-got-x-client-ip: 127.0.0.1\r\n", // curl's address, without its port
		"x-got-x-user: user-jason\r\n",
		fmt.Sprintf("x-served-by: 127.0.0.1:%d\r\n", shop),
		"x-proto: http/1.1\r\n",
		"x-discount: 100%\r\n",
	} {
		if !strings.Contains(head, want) {
			t.Errorf("curl's response head lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(head, "x-got-x-none") {
		t.Errorf("x-none was sent although %%REQ(x-absent)%% has no value:\n%s", out)
	}

	// corsPolicy, seen by curl: a preflight from an allowed origin is
	// answered by the proxy; from another origin it is answered without
	// CORS headers (unmatchedPreflights IGNORE), never forwarded.
	const cors = "http://shop.default.svc.cluster.local:8000/cors"
	out = strings.ToLower(curl("-X", "OPTIONS", "-H", "Origin: https://app.example.com", "-H", "Access-Control-Request-Method: POST", cors))
	for _, want := range []string{"http/1.1 200", "access-control-allow-origin: https://app.example.com\r\n", "access-control-allow-methods: get,post\r\n",
		"access-control-allow-headers: x-custom\r\n", "access-control-max-age: 86400\r\n", "access-control-allow-credentials: true\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("preflight from an allowed origin lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "primary") {
		t.Errorf("preflight reached the application:\n%s", out)
	}
	out = strings.ToLower(curl("-X", "OPTIONS", "-H", "Origin: https://evil.test", "-H", "Access-Control-Request-Method: POST", cors))
	if !strings.Contains(out, "http/1.1 200") || strings.Contains(out, "access-control-") || strings.Contains(out, "primary") {
		t.Errorf("preflight from another origin: want 200 without CORS headers, answered by the proxy:\n%s", out)
	}
	out = strings.ToLower(curl("-H", "Origin: https://shop.example.org", "-H", "x-name: ann", cors))
	for _, want := range []string{"access-control-allow-origin: https://shop.example.org\r\n", "access-control-expose-headers: x-got-x-user\r\n", "primary"} {
		if !strings.Contains(out, want) {
			t.Errorf("request from an allowed origin (by regex) lacks %q:\n%s", want, out)
		}
	}
	out = strings.ToLower(curl("-H", "Origin: https://evil.test", cors))
	if strings.Contains(out, "access-control-allow-origin") || !strings.Contains(out, "primary") {
		t.Errorf("request from another origin: want the answer without CORS headers:\n%s", out)
	}
}
