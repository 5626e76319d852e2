package ctl

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/localmesh"
)

// TestBugReportRemovesSecrets serves a config dump, logs and configuration
// holding a private key (PEM and base64 PEM) and tokens, and checks that the
// tarball has every part of the report and none of the secrets.
func TestBugReportRemovesSecrets(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	keyB64 := base64.StdEncoding.EncodeToString([]byte(keyPEM))
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ0ZXN0aW5nQG1hc3QuaW8iLCJzdWIiOiJ1MSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
	opaque := "s3cr3t-opaque-token-value"
	dump, _ := json.Marshal(map[string]any{"configs": []any{map[string]any{
		"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
		"dynamic_active_secrets": []any{map[string]any{"name": "default", "secret": map[string]any{"tls_certificate": map[string]any{
			"private_key": map[string]any{"inline_bytes": keyB64}, "password": map[string]any{"inline_string": opaque}}}}},
	}}})
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/config_dump":
			w.Write(dump)
		default:
			io.WriteString(w, "cluster.x.upstream_rq_total: 1\n")
		}
	}))
	defer admin.Close()
	mastd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `[{"id":"sidecar~127.0.1.6~ratings-v1.default~default.svc.cluster.local","token":"`+opaque+`"}]`)
	}))
	defer mastd.Close()

	state, out := t.TempDir(), t.TempDir()
	configDir := filepath.Join(state, "config")
	os.MkdirAll(configDir, 0o755)
	os.WriteFile(filepath.Join(configDir, "ra.yaml"), []byte("apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra, namespace: default}\nspec: {jwtRules: [{issuer: a@b}]}\n# "+keyPEM), 0o644)
	logPath := filepath.Join(state, "ratings-v1-sidecar.log")
	os.WriteFile(logPath, []byte("msg=\"got Authorization: Bearer "+jwt+"\"\n"+keyPEM+"\nauthorization: Basic "+base64.StdEncoding.EncodeToString([]byte("user:"+opaque))+"\n"), 0o644)
	st := localmesh.RunState{PID: os.Getpid(), ConfigDir: configDir, MonitoringAddr: strings.TrimPrefix(mastd.URL, "http://"),
		Procs: []localmesh.ProcState{{Name: "ratings-v1-sidecar", Admin: strings.TrimPrefix(admin.URL, "http://"), Log: logPath}}}
	b, _ := json.Marshal(st)
	os.WriteFile(filepath.Join(state, "run.json"), b, 0o644)

	var stdout, stderr bytes.Buffer
	if code := BugReport([]string{"--state-dir", state, "--dir", out}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	f, err := os.Open(filepath.Join(out, "bug-report.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(b)
	}
	for _, want := range []string{"version.txt", "mastd/syncz.json", "mastd/configz.json", "mastd/registryz.json", "proxies/ratings-v1/config_dump.json",
		"proxies/ratings-v1/stats.txt", "proxies/ratings-v1/clusters.txt", "logs/ratings-v1-sidecar.log", "config/ra.yaml", "analyze.txt"} {
		if _, ok := got["bug-report/"+want]; !ok {
			t.Errorf("the report lacks %s (has %v)", want, keys(got))
		}
	}
	body := strings.Split(strings.TrimSpace(keyPEM), "\n")[1] // a line of the key itself
	for name, data := range got {
		for what, secret := range map[string]string{"private key": body, "base64 private key": keyB64[20:60], "JWT": jwt, "opaque token": opaque,
			"basic credentials": base64.StdEncoding.EncodeToString([]byte("user:" + opaque))} {
			if strings.Contains(data, secret) {
				t.Errorf("%s holds the %s:\n%s", name, what, data)
			}
		}
	}
	if !strings.Contains(got["bug-report/config/ra.yaml"], "issuer: a@b") || !strings.Contains(got["bug-report/logs/ratings-v1-sidecar.log"], "[REDACTED") {
		t.Errorf("redaction removed more than secrets, or nothing:\n%s\n%s", got["bug-report/config/ra.yaml"], got["bug-report/logs/ratings-v1-sidecar.log"])
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
