package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// osbClient drives the broker with curl, as a platform would.
type osbClient struct {
	t         *testing.T
	url, user string
}

func (c osbClient) call(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	args := []string{"-sS", "-m", "30", "-u", c.user, "-H", "X-Broker-API-Version: 2.17", "-H", "X-Broker-API-Request-Identity: e2e-" + method,
		"-X", method, "-w", "\n%{http_code}", c.url + path}
	if body != "" {
		args = append(args, "-H", "Content-Type: application/json", "-d", body)
	}
	out, err := exec.Command("curl", args...).Output()
	if err != nil {
		c.t.Fatalf("curl %s %s: %v", method, path, err)
	}
	s := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(s, '\n')
	var status int
	fmt.Sscan(s[i+1:], &status)
	var v map[string]any
	if err := json.Unmarshal([]byte(s[:i]), &v); err != nil {
		c.t.Fatalf("%s %s: %d, body not JSON: %q", method, path, status, s[:i])
	}
	return status, v
}

// opensslGET sends GET path through openssl s_client to addr with the
// binding's certificate, offering alpn, and returns the status line (or
// what openssl said when there was none).
func opensslGET(t *testing.T, addr, dir string, alpn []string, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_client", "-quiet", "-connect", addr, "-tls1_3",
		"-cert", filepath.Join(dir, "cert.pem"), "-key", filepath.Join(dir, "key.pem"),
		"-CAfile", filepath.Join(dir, "ca.pem"), "-verify_return_error", "-alpn", strings.Join(alpn, ","))
	cmd.Stdin = strings.NewReader("GET " + path + " HTTP/1.1\r\nHost: ratings\r\nConnection: close\r\n\r\n")
	out, _ := cmd.CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "HTTP/1.1 ") {
			return strings.TrimSpace(l)
		}
	}
	return "no response: " + string(out)
}

// TestLocalMeshBroker: `mast up` runs the broker with Bookinfo's services;
// a platform (curl) provisions ratings and binds; a client outside the
// mesh (openssl s_client) with the binding's certificate reaches ratings
// through its sidecar with mTLS, verifying the sidecar's SPIFFE identity;
// the instance and binding survive a restart of the mesh; after unbinding
// the same client is refused, and stays refused after deprovisioning.
func TestLocalMeshBroker(t *testing.T) {
	for _, tool := range []string{"curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install %s)", tool, tool)
		}
	}
	m := startMesh(t)
	line := regexp.MustCompile(`(?m)^\s*Broker  (http://127\.0\.0\.1:\d+)  \(credentials: (\S+)\)$`).FindStringSubmatch(m.up.Output())
	if line == nil {
		t.Fatalf("mast up printed no Broker line:\n%s", m.up.Output())
	}
	creds, err := os.ReadFile(line[2])
	if err != nil || !strings.Contains(string(creds), ":") {
		t.Fatalf("credentials file %s: %v %q", line[2], err, creds)
	}
	var cc struct {
		URL      string `json:"url"`
		User     string `json:"user"`
		Password string `json:"password"`
		Services []struct {
			ID, Name string
			Plans    []struct{ ID, Name string }
		} `json:"services"`
	}
	raw, err := os.ReadFile(filepath.Join(m.stateDir, "broker", "client.json"))
	if err != nil || json.Unmarshal(raw, &cc) != nil || cc.URL != line[1] || cc.User+":"+cc.Password != strings.TrimSpace(string(creds)) {
		t.Fatalf("client config: %v %s", err, raw)
	}
	var sid, pid string
	var names []string
	for _, s := range cc.Services {
		names = append(names, s.Name)
		if s.Name == "ratings.default" {
			sid, pid = s.ID, s.Plans[0].ID
		}
	}
	if !slices.Equal(names, []string{"details.default", "productpage.default", "ratings.default", "reviews.default"}) {
		t.Fatalf("catalog %v, want Bookinfo's four services", names)
	}
	osb := osbClient{t: t, url: line[1], user: strings.TrimSpace(string(creds))}

	if st, body := osb.call("PUT", "/v2/service_instances/e2e-inst", `{"service_id":"`+sid+`","plan_id":"`+pid+`","organization_guid":"org","space_guid":"space"}`); st != 201 {
		t.Fatalf("provision: %d %v", st, body)
	}
	st, bind := osb.call("PUT", "/v2/service_instances/e2e-inst/service_bindings/e2e-bind", `{"service_id":"`+sid+`","plan_id":"`+pid+`"}`)
	if st != 201 {
		t.Fatalf("bind: %d %v", st, bind)
	}
	c := bind["credentials"].(map[string]any)
	dir := t.TempDir()
	for file, key := range map[string]string{"cert.pem": "client_certificate", "key.pem": "client_key", "ca.pem": "ca_certificate"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(c[key].(string)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := c["addresses"].([]any)[0].(string)
	var alpn []string
	for _, a := range c["alpn"].([]any) {
		alpn = append(alpn, a.(string))
	}

	reaches := func(what string) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			if got := opensslGET(t, addr, dir, alpn, "/ratings/0"); got != "HTTP/1.1 200 OK" {
				return fmt.Errorf("openssl s_client got %s", got)
			}
			return nil
		})
	}
	reaches("the bound client reaching ratings")

	t.Run("the sidecar presents the identity the binding names", func(t *testing.T) {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM([]byte(c["ca_certificate"].(string)))
		conn, err := tls.Dial("tcp", addr, &tls.Config{
			Certificates: []tls.Certificate{pair}, NextProtos: alpn, MinVersion: tls.VersionTLS13,
			InsecureSkipVerify: true, // the chain and the SPIFFE ID are checked below
		})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		peer := conn.ConnectionState().PeerCertificates
		inter := x509.NewCertPool()
		for _, p := range peer[1:] {
			inter.AddCert(p)
		}
		if _, err := peer[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
			t.Fatalf("the sidecar's certificate does not chain to the binding's CA: %v", err)
		}
		if len(peer[0].URIs) != 1 || peer[0].URIs[0].String() != c["spiffe_id"] {
			t.Fatalf("sidecar identity %v, binding says %v", peer[0].URIs, c["spiffe_id"])
		}
	})

	// Restart the whole mesh on the same state (mast up resets the
	// configuration directory to Bookinfo's, so the broker must restore its
	// policy too).
	m.up.stop()
	m.up = startBinary(t, copyBinary(t, "mast"), "up", "--state-dir", m.stateDir)
	waitLine(t, m.up, "Press Ctrl-C to stop", 2*time.Minute)
	t.Run("instance and binding survive a restart", func(t *testing.T) {
		if st, body := osb.call("GET", "/v2/service_instances/e2e-inst", ""); st != 200 || body["service_id"] != sid {
			t.Fatalf("instance after restart: %d %v", st, body)
		}
		st, again := osb.call("GET", "/v2/service_instances/e2e-inst/service_bindings/e2e-bind", "")
		if st != 200 || again["credentials"].(map[string]any)["client_certificate"] != c["client_certificate"] {
			t.Fatalf("binding after restart: %d %v", st, again)
		}
		reaches("the bound client after the restart")
	})

	if st, body := osb.call("DELETE", "/v2/service_instances/e2e-inst/service_bindings/e2e-bind?service_id="+sid+"&plan_id="+pid, ""); st != 200 {
		t.Fatalf("unbind: %d %v", st, body)
	}
	refused := func(what string) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			if got := opensslGET(t, addr, dir, alpn, "/ratings/0"); got != "HTTP/1.1 403 Forbidden" {
				return fmt.Errorf("openssl s_client got %s", got)
			}
			return nil
		})
	}
	refused("the unbound client refused")
	if st, body := osb.call("DELETE", "/v2/service_instances/e2e-inst?service_id="+sid+"&plan_id="+pid, ""); st != 200 {
		t.Fatalf("deprovision: %d %v", st, body)
	}
	// The certificate is valid for another hour: the instance's policy
	// stays, denying all its identities, until it expires.
	if files, _ := filepath.Glob(filepath.Join(m.stateDir, "config", "broker", "*.yaml")); len(files) != 1 {
		t.Fatalf("after deprovisioning the broker's files are %v, want the retired policy", files)
	}
	refused("the client of a deprovisioned instance refused")
}
