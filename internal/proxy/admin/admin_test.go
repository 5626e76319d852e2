package admin

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/httpproxy"
	"github.com/mast-mesh/mast/internal/proxy/listener"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

type fakeSource struct{ quits int }

func (f *fakeSource) Ready() bool                            { return true }
func (f *fakeSource) Snapshot() *xdsparse.Snapshot           { return xdsparse.EmptySnapshot() }
func (f *fakeSource) Clusters() map[string]*upstream.Cluster { return nil }
func (f *fakeSource) Listeners() []listener.Info             { return nil }
func (f *fakeSource) HTTPStats() *httpproxy.Stats            { return &httpproxy.Stats{} }
func (f *fakeSource) XDSState() (connected bool, a, n int64) { return true, 0, 0 }
func (f *fakeSource) Secrets() []Secret                      { return nil }
func (f *fakeSource) Bootstrap() Bootstrap                   { return Bootstrap{} }
func (f *fakeSource) Quit()                                  { f.quits++ }

// TestAdminRefusesBrowserAttacks: a web page can send "simple" cross-origin
// POSTs to 127.0.0.1:15000 (no preflight) and, through DNS rebinding, read
// it under its own host name. Neither may reach the admin endpoints.
func TestAdminRefusesBrowserAttacks(t *testing.T) {
	src := &fakeSource{}
	level := new(slog.LevelVar)
	srv := httptest.NewServer(Handler(src, level))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	do := func(method, path string, hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		want               int
	}{
		{"GET quit", "GET", "/quitquitquit", nil, 405},
		{"cross-origin quit", "POST", "/quitquitquit", map[string]string{"Origin": "http://evil.example"}, 403},
		{"cross-site quit", "POST", "/quitquitquit", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"rebinding quit", "POST", "/quitquitquit", map[string]string{"Host": "evil.example:15000"}, 421},
		{"cross-origin logging", "POST", "/logging?level=debug", map[string]string{"Origin": "http://evil.example"}, 403},
		{"GET logging change", "GET", "/logging?level=debug", nil, 405},
		{"rebinding config_dump", "GET", "/config_dump", map[string]string{"Host": "evil.example"}, 421},
		{"cross-site config_dump", "GET", "/config_dump", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"cross-origin config_dump", "GET", "/config_dump", map[string]string{"Origin": "http://evil.example"}, 403},
	} {
		if got := do(tc.method, tc.path, tc.hdr); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	if src.quits != 0 || level.Level() != slog.LevelInfo {
		t.Fatalf("refused requests changed state: quits=%d level=%s", src.quits, level.Level())
	}
	if got := do("POST", "/logging?level=debug", map[string]string{"Origin": "http://" + host}); got != 200 || level.Level() != slog.LevelDebug {
		t.Errorf("same-origin level change: %d, level %s", got, level.Level())
	}
	if got := do("POST", "/quitquitquit", nil); got != 200 || src.quits != 1 {
		t.Errorf("curl-style quit: %d, quits %d", got, src.quits)
	}
	if got := do("GET", "/config_dump", map[string]string{"Host": "localhost:15000"}); got != 200 {
		t.Errorf("config_dump on localhost: %d", got)
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "example.com:0"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) bound a non-loopback address", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.1.7:0", "localhost:0"} {
		ln, err := Listen(addr)
		if err != nil {
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		ln.Close()
	}
}
