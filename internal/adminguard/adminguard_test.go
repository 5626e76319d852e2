package adminguard

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckMutating(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte("s3cret\n"), 0o600)
	withTok := Options{TokenFile: tokFile, Hosts: []string{"mastd.istio-system.svc"}}
	cases := []struct {
		name   string
		opts   Options
		method string
		host   string
		hdr    map[string]string
		want   int
	}{
		{"curl with token", withTok, "POST", "127.0.0.1:15014", map[string]string{"Authorization": "Bearer s3cret"}, 0},
		{"IPv6 loopback", withTok, "POST", "[::1]:15014", map[string]string{"Authorization": "bearer s3cret"}, 0},
		{"configured name", withTok, "POST", "mastd.istio-system.svc:15014", map[string]string{"Authorization": "Bearer s3cret"}, 0},
		{"same origin", withTok, "POST", "localhost:15014", map[string]string{"Authorization": "Bearer s3cret", "Origin": "http://localhost:15014", "Sec-Fetch-Site": "same-origin"}, 0},
		{"GET", withTok, "GET", "127.0.0.1", nil, 405},
		{"rebinding", withTok, "POST", "rebind.evil.example:15014", map[string]string{"Authorization": "Bearer s3cret"}, 421},
		{"no host", withTok, "POST", "", nil, 421},
		{"other origin", withTok, "POST", "127.0.0.1:15014", map[string]string{"Authorization": "Bearer s3cret", "Origin": "http://127.0.0.1:8080"}, 403},
		{"same-site", withTok, "POST", "127.0.0.1:15014", map[string]string{"Authorization": "Bearer s3cret", "Sec-Fetch-Site": "same-site"}, 403},
		{"missing token", withTok, "POST", "127.0.0.1", nil, 401},
		{"wrong token", withTok, "POST", "127.0.0.1", map[string]string{"Authorization": "Bearer s3cre"}, 401},
		{"required, none configured", Options{RequireToken: true}, "POST", "127.0.0.1", map[string]string{"Authorization": "Bearer "}, 401},
		{"token file gone", Options{TokenFile: filepath.Join(t.TempDir(), "absent")}, "POST", "127.0.0.1", map[string]string{"Authorization": "Bearer "}, 401},
		{"no token needed", Options{}, "POST", "127.0.0.1", nil, 0},
	}
	for _, tc := range cases {
		r, _ := http.NewRequest(tc.method, "http://x/debug/thing", nil)
		r.Host = tc.host
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		if code, err := tc.opts.CheckMutating(r); code != tc.want {
			t.Errorf("%s: status %d (%v), want %d", tc.name, code, err, tc.want)
		}
	}
}
