package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// authzPathConfig: workload web (HTTP 9080) behind a sidecar without capture
// at %[2]s, app at 127.0.0.1:%[1]d, and a DENY policy on /admin and below.
const authzPathConfig = webWorkload + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
`

// webWorkload is the web service (HTTP 9080) of several tests: its
// ServiceEntry, its WorkloadEntry at %[2]s and a Sidecar without capture
// handing requests to the app at 127.0.0.1:%[1]d.
const webWorkload = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: default}
spec: {address: %[2]s, ports: {http: 9080}, labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: default}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:%[1]d
`

// worstCaseApp is an application that reads paths as loosely as any real
// one might: every escape decoded (repeatedly), backslashes as slashes,
// ";" parameters dropped, slashes merged, dot segments resolved, the
// fragment ignored. It answers PROTECTED for /admin and below, so any
// spelling that reaches it and means /admin to it shows.
func worstCaseApp(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := looseReading(r.RequestURI)
		if p == "/admin" || strings.HasPrefix(p, "/admin/") {
			fmt.Fprint(w, "PROTECTED "+r.RequestURI)
			return
		}
		fmt.Fprint(w, "public "+p)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func looseReading(uri string) string {
	if i := strings.Index(uri, "://"); i >= 0 {
		uri = uri[i+3:]
		if j := strings.IndexByte(uri, '/'); j >= 0 {
			uri = uri[j:]
		} else {
			uri = "/"
		}
	}
	p, _, _ := strings.Cut(uri, "?")
	p, _, _ = strings.Cut(p, "#")
	for range 3 {
		var b strings.Builder
		for i := 0; i < len(p); i++ {
			if p[i] == '%' && i+2 < len(p) {
				var v byte
				if _, err := fmt.Sscanf(p[i+1:i+3], "%02x", &v); err == nil {
					b.WriteByte(v)
					i += 2
					continue
				}
			}
			b.WriteByte(p[i])
		}
		p = b.String()
	}
	p = strings.ReplaceAll(p, `\`, "/")
	var segs []string
	for _, s := range strings.Split(p, "/") {
		s, _, _ = strings.Cut(s, ";")
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	if strings.HasSuffix(p, "/") && out != "/" {
		out += "/"
	}
	return out
}

// pathCorpus are spellings of the protected /admin tree (and a few that
// only look like it); "raw" ones go over a plain socket because curl would
// rewrite them, "h2" ones over HTTP/2 with curl.
var pathCorpus = []struct{ path, via string }{
	{"/admin", "curl"}, {"/admin/", "curl"}, {"/admin/secret", "curl"}, {"//admin/secret", "curl"},
	{"/admin//secret", "curl"}, {"///admin", "curl"}, {"/./admin", "curl"}, {"/public/../admin", "curl"},
	{"/public/../admin/secret", "curl"}, {"/public/%2e%2e/admin", "curl"}, {"/public/%2E%2E/admin", "curl"},
	{"/public/.%2e/admin", "curl"}, {"/%61dmin", "curl"}, {"/%61%64%6d%69%6e/secret", "curl"},
	{"/admin%2Fsecret", "curl"}, {"/admin%2fsecret", "curl"}, {"/public%2F..%2Fadmin", "curl"},
	{"/public%2f..%2fadmin", "curl"}, {"/public/..%2Fadmin", "curl"}, {"/admin%5Csecret", "curl"},
	{"/admin;jsessionid=x", "curl"}, {"/admin;/secret", "curl"}, {"/admin/secret;x=1", "curl"},
	{"/public/..;/admin", "curl"}, {"/admin?x=1", "curl"}, {"/admin/secret/.", "curl"}, {"/admin/./secret", "curl"},
	{"/%2561dmin", "curl"}, {"/public/%252e%252e/admin", "curl"}, {"/ADMIN", "curl"}, {"/.%2e/admin", "curl"},
	{"/public/%2e%2e%2fadmin", "curl"}, {"/admin/%2e%2e/admin/secret", "curl"}, {"/Admin/../admin", "curl"},
	{`/public\..\admin`, "raw"}, {`/public/..\admin`, "raw"}, {`\admin`, "raw"}, {"/admin#frag", "raw"},
	{"/public#/../admin", "raw"}, {"http://web.default.svc.cluster.local/admin", "raw"},
	{"http://web.default.svc.cluster.local/public/../admin", "raw"}, {"http://web/%2e%2e/admin%2fx", "raw"},
	{"/public/../admin", "h2"}, {"/admin%2Fsecret", "h2"}, {"//admin", "h2"}, {"/%61dmin", "h2"}, {"/admin;x", "h2"},
}

// rawGet sends target in a request line of its own and returns the status
// and body.
func rawGet(addr, target string) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: web.default.svc.cluster.local\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func curlGet(t *testing.T, url string, extra ...string) (int, string, error) {
	args := append([]string{"-s", "--path-as-is", "--max-time", "10", "-H", "Host: web.default.svc.cluster.local", "-w", "\n%{http_code}"}, extra...)
	out, err := exec.Command("curl", append(args, url)...).Output()
	if err != nil {
		return 0, "", fmt.Errorf("curl %s: %v", url, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscanf(s[i+1:], "%d", &code)
	return code, s[:i], nil
}

// TestAuthzPathCorpus sends every spelling in pathCorpus to a sidecar whose
// workload has a DENY policy on /admin, under each of Istio's path
// normalization modes, through real mastd and mast-proxy: none reaches
// the protected resource of an application that reads paths as loosely as
// possible, while the public tree stays reachable.
func TestAuthzPathCorpus(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	app := worstCaseApp(t)
	for _, mode := range []string{"NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"} {
		t.Run(mode, func(t *testing.T) {
			ip := uniqueLoopback()
			dir, meshDir := t.TempDir(), t.TempDir()
			writeFile(t, dir, "mesh.yaml", fmt.Sprintf(authzPathConfig, app, ip))
			writeFile(t, meshDir, "mesh.yaml", "pathNormalization:\n  normalization: "+mode+"\n")
			xdsAddr := freeAddr(t)
			mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", freeAddr(t),
				"--debounce-after", "10ms", "--mesh-config", meshDir+"/mesh.yaml")
			waitLine(t, mastd, "mastd serving", 30*time.Second)
			start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~web-1.default~default.svc.cluster.local", ip),
				"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
				"--labels", "app=web", "--meta", "INTERCEPTION_MODE=NONE")
			base := "http://" + ip + ":9080"
			eventually(t, 30*time.Second, "the public tree through the sidecar", func() error {
				code, body, err := curlGet(t, base+"/public/x")
				if err == nil && (code != 200 || body != "public /public/x") {
					err = fmt.Errorf("got %d %q", code, body)
				}
				return err
			})
			if code, body, err := curlGet(t, base+"/admin"); err != nil || code != 403 || body != "RBAC: access denied" {
				t.Fatalf("/admin: %d %q %v, want 403 RBAC: access denied", code, body, err)
			}
			for _, c := range pathCorpus {
				var code int
				var body string
				var err error
				switch c.via {
				case "raw":
					code, body, err = rawGet(ip+":9080", c.path)
				case "h2":
					code, body, err = curlGet(t, base+c.path, "--http2-prior-knowledge")
				default:
					code, body, err = curlGet(t, base+c.path)
				}
				if err != nil {
					t.Errorf("%s %q: %v", c.via, c.path, err)
					continue
				}
				if strings.HasPrefix(body, "PROTECTED") {
					t.Errorf("%s %q reached the protected resource: %d %q", c.via, c.path, code, body)
				}
				t.Logf("%-4s %-50q %d %.40q", c.via, c.path, code, body)
			}
		})
	}
}
