package jwks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

const (
	setA = `{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	setB = `{"keys":[{"kty":"EC","crv":"P-256","kid":"b","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
)

// issuer is a loopback JWKS server whose answer the test changes.
type issuer struct {
	mu     sync.Mutex
	status int
	body   string
	delay  time.Duration
	hits   atomic.Int32
	srv    *httptest.Server
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{status: 200, body: setA}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		is.mu.Lock()
		st, body, delay := is.status, is.body, is.delay
		is.mu.Unlock()
		if r.URL.Path == "/.well-known/openid-configuration" {
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, is.srv.URL, is.srv.URL+"/jwks")
			return
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(st)
		io.WriteString(w, body)
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) set(status int, body string) {
	is.mu.Lock()
	is.status, is.body = status, body
	is.mu.Unlock()
}

// waitFor polls cond until it holds (no timing is asserted: the deadline
// only ends a hung test).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startFetcher(t *testing.T, cfg Config) (*Fetcher, *atomic.Int32) {
	var changes atomic.Int32
	cfg.OnChange = func() { changes.Add(1) }
	cfg.Logger = slog.New(slog.DiscardHandler)
	f := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f, &changes
}

func TestFetchRefreshKeepLastGood(t *testing.T) {
	is := newIssuer(t)
	f, changes := startFetcher(t, Config{Refresh: 20 * time.Millisecond, MaxRetry: 20 * time.Millisecond})
	key := model.JWKSKey{URI: is.srv.URL + "/jwks"}
	f.Want(map[model.JWKSKey]time.Duration{key: 0})
	waitFor(t, "first fetch", func() bool { return f.Snapshot()[key] == setA })
	if changes.Load() != 1 {
		t.Errorf("%d change notifications after the first fetch, want 1", changes.Load())
	}

	// The issuer goes down: the last good set stays.
	is.set(503, "down")
	hits := is.hits.Load()
	waitFor(t, "failed refreshes", func() bool { return is.hits.Load() > hits+2 })
	if f.Snapshot()[key] != setA {
		t.Fatal("last good key set dropped while the issuer is down")
	}
	if st := f.Statuses(); len(st) != 1 || st[0].Failures == 0 || !strings.Contains(st[0].Error, "503") {
		t.Errorf("statuses %+v", st)
	}
	// An unusable answer is a failure too.
	is.set(200, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
	hits = is.hits.Load()
	waitFor(t, "refreshes", func() bool { return is.hits.Load() > hits+2 })
	if f.Snapshot()[key] != setA || changes.Load() != 1 {
		t.Fatal("an unusable key set replaced the good one")
	}

	// Rotation: the new set is taken and announced.
	is.set(200, setB)
	waitFor(t, "rotation", func() bool { return f.Snapshot()[key] == setB })
	waitFor(t, "change notification", func() bool { return changes.Load() == 2 })

	// No longer wanted: dropped.
	f.Want(nil)
	if len(f.Snapshot()) != 0 {
		t.Error("unwanted key set kept")
	}
}

func TestFetchBounds(t *testing.T) {
	is := newIssuer(t)
	// A timeout the size check cannot lose to on a loaded machine: this
	// case is about size (a 50 ms timeout failed it at load 60).
	f, _ := startFetcher(t, Config{MaxSize: 64, Timeout: 30 * time.Second, MaxRetry: time.Hour})
	big := model.JWKSKey{URI: is.srv.URL + "/jwks"}
	f.Want(map[model.JWKSKey]time.Duration{big: 0})
	waitFor(t, "a failed fetch", func() bool { st := f.Statuses(); return len(st) == 1 && st[0].Failures > 0 })
	if st := f.Statuses(); !strings.Contains(st[0].Error, "too large") || len(f.Snapshot()) != 0 {
		t.Errorf("oversized document: %+v", st)
	}

	is2 := newIssuer(t)
	is2.delay = time.Hour
	f2, _ := startFetcher(t, Config{Timeout: 50 * time.Millisecond, MaxRetry: time.Hour})
	slow := model.JWKSKey{URI: is2.srv.URL + "/jwks"}
	f2.Want(map[model.JWKSKey]time.Duration{slow: 0})
	waitFor(t, "a timed-out fetch", func() bool { st := f2.Statuses(); return len(st) == 1 && st[0].Failures > 0 })
	if st := f2.Statuses(); !strings.Contains(st[0].Error, "deadline") || len(f2.Snapshot()) != 0 {
		t.Errorf("slow issuer: %+v", st)
	}
}

func TestOpenIDDiscovery(t *testing.T) {
	is := newIssuer(t)
	f, _ := startFetcher(t, Config{})
	key := model.JWKSKey{Issuer: is.srv.URL + "/"}
	f.Want(map[model.JWKSKey]time.Duration{key: 0})
	waitFor(t, "discovery and fetch", func() bool { return f.Snapshot()[key] == setA })
}
