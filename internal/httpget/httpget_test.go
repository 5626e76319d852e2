package httpget

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(r.Header.Get("Accept")))
		case "/big":
			w.Write([]byte(strings.Repeat("x", 11)))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if b, err := Get(ctx, srv.Client(), srv.URL+"/ok", "application/json", 16); err != nil || string(b) != "application/json" {
		t.Errorf("ok: %q %v", b, err)
	}
	if b, err := Get(ctx, srv.Client(), srv.URL+"/big", "", 10); !errors.Is(err, ErrTooLarge) || b != nil {
		t.Errorf("11 bytes with a bound of 10: %q %v, want ErrTooLarge", b, err)
	}
	if _, err := Get(ctx, srv.Client(), srv.URL+"/big", "", 11); err != nil {
		t.Errorf("11 bytes with a bound of 11: %v", err)
	}
	if _, err := Get(ctx, srv.Client(), srv.URL+"/gone", "", 10); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "/gone") {
		t.Errorf("404: %v, want the status and the URL", err)
	}
}
