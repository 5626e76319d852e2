package ratings

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	return res.StatusCode, strings.TrimSpace(string(b))
}

func TestRatings(t *testing.T) {
	srv := httptest.NewServer(New(Config{}))
	defer srv.Close()
	// Steps run in order: a POST changes what later GETs see.
	steps := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/ratings/0", "", 200, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"GET", "/ratings/3", "", 200, `{"id":3,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"GET", "/ratings/x", "", 400, `{"error":"please provide numeric product ID"}`},
		{"GET", "/health", "", 200, `{"status":"Ratings is healthy"}`},
		{"POST", "/ratings/3", `{"Reviewer1":1,"Reviewer2":2}`, 200, `{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}`},
		{"GET", "/ratings/3", "", 200, `{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}`},
		{"GET", "/ratings/0", "", 200, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"POST", "/ratings/3", `not json`, 400, `{"error":"please provide valid ratings JSON"}`},
		{"POST", "/ratings/3", `null`, 400, `{"error":"please provide valid ratings JSON"}`},
		{"POST", "/ratings/3", `{"Reviewer1":"five"}`, 400, `{"error":"please provide valid ratings JSON"}`},
		{"POST", "/ratings/y", `{}`, 400, `{"error":"please provide numeric product ID"}`},
		{"POST", "/ratings/3", `{"a":` + strings.Repeat(" ", maxBody) + `1}`, 400, `{"error":"please provide valid ratings JSON"}`},
		{"GET", "/ratings/3", "", 200, `{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}`},
	}
	for i, s := range steps {
		status, body := do(t, s.method, srv.URL+s.path, s.body)
		if status != s.status || body != s.want {
			t.Errorf("step %d %s %s: got %d %s, want %d %s", i, s.method, s.path, status, body, s.status, s.want)
		}
	}
}

func TestRatingsReturnsCopy(t *testing.T) {
	h := New(Config{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	do(t, "POST", srv.URL+"/ratings/1", `{"Reviewer1":3}`)
	p := h.Ratings(1)
	p.Ratings["Reviewer1"] = 0
	if got := h.Ratings(1).Ratings["Reviewer1"]; got != 3 {
		t.Fatalf("stored rating changed through a returned map: %d", got)
	}
}

func FuzzParseRatings(f *testing.F) {
	for _, s := range []string{`{"Reviewer1":5,"Reviewer2":4}`, `{}`, `null`, `[]`, `{"a":1e3}`, `{"a":-1}`, ``, `{"a":"b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRatings(b)
		if err == nil && r == nil {
			t.Fatal("nil ratings without an error")
		}
		if err != nil && r != nil {
			t.Fatal("ratings returned with an error")
		}
	})
}
