package details

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDetails(t *testing.T) {
	srv := httptest.NewServer(New(Config{}))
	defer srv.Close()
	tests := []struct {
		path   string
		status int
		want   map[string]any
	}{
		{"/details/0", 200, map[string]any{
			"id": 0.0, "author": "William Shakespeare", "year": 1595.0, "type": "paperback", "pages": 200.0,
			"publisher": "PublisherA", "language": "English", "ISBN-10": "1234567890", "ISBN-13": "123-1234567890",
		}},
		{"/details/7", 200, map[string]any{"id": 7.0, "author": "William Shakespeare"}},
		{"/details/abc", 400, map[string]any{"error": "please provide numeric product id"}},
		{"/details/", 400, map[string]any{"error": "please provide numeric product id"}},
		{"/health", 200, map[string]any{"status": "Details is healthy"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestDetailsUnknownPath(t *testing.T) {
	srv := httptest.NewServer(New(Config{}))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", res.StatusCode)
	}
}
