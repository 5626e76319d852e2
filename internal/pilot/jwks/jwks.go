// Package jwks is mastd's JWKS fetcher: for every RequestAuthentication
// jwtRule with a jwksUri (or only an issuer, through OpenID discovery) it
// fetches the key set with a size and time bound, refreshes it
// periodically, keeps the last good set while the issuer is unreachable,
// and reports changes so that Pilot pushes the keys inline (istiod's
// behaviour with PILOT_JWT_ENABLE_REMOTE_JWKS=false, its default).
package jwks

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/httpget"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/filter/jwtauthn"
)

// Defaults, as istiod's where it has one.
const (
	DefaultTimeout  = 5 * time.Second  // jwtRule.timeout's default
	DefaultRefresh  = 20 * time.Minute // PILOT_JWT_PUB_KEY_REFRESH_INTERVAL
	DefaultMaxSize  = 1 << 20
	DefaultMaxRetry = time.Minute
	firstRetry      = time.Second
)

// Config configures a Fetcher.
type Config struct {
	// Client makes the requests; nil: a client with no other timeout than
	// the per-fetch one.
	Client *http.Client
	// Timeout bounds one fetch (discovery included) when the rule sets none.
	Timeout time.Duration
	// MaxSize bounds a document, in bytes.
	MaxSize int64
	// Refresh is the period between fetches of a key set that was fetched.
	Refresh time.Duration
	// MaxRetry caps the backoff between failed fetches (it starts at 1 s).
	MaxRetry time.Duration
	// OnChange is called, from Run's goroutine, after a key set changed.
	OnChange func()
	Logger   *slog.Logger
}

// Fetcher keeps the key sets the configuration asks for.
type Fetcher struct {
	cfg  Config
	kick chan struct{}

	mu      sync.Mutex
	want    map[model.JWKSKey]time.Duration // key -> timeout (0: default)
	entries map[model.JWKSKey]*entry
}

type entry struct {
	jwks     string // last good set, "" when never fetched
	next     time.Time
	failures int
	lastErr  error
}

// New returns a Fetcher; call Run to start fetching.
func New(cfg Config) *Fetcher {
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.MaxRetry <= 0 {
		cfg.MaxRetry = DefaultMaxRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Fetcher{cfg: cfg, kick: make(chan struct{}, 1), want: map[model.JWKSKey]time.Duration{}, entries: map[model.JWKSKey]*entry{}}
}

// Want sets the key sets to keep (model.JWKSKeys of the configuration).
// New ones are fetched at once; ones no longer wanted are dropped.
func (f *Fetcher) Want(keys map[model.JWKSKey]time.Duration) {
	f.mu.Lock()
	f.want = maps.Clone(keys)
	added := false
	for k := range keys {
		if _, ok := f.entries[k]; !ok {
			f.entries[k] = &entry{}
			added = true
		}
	}
	for k := range f.entries {
		if _, ok := keys[k]; !ok {
			delete(f.entries, k)
		}
	}
	f.mu.Unlock()
	if added {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
}

// Snapshot returns the good key sets as of now, for one push context.
func (f *Fetcher) Snapshot() model.JWKSSnapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := model.JWKSSnapshot{}
	for k, e := range f.entries {
		if e.jwks != "" {
			out[k] = e.jwks
		}
	}
	return out
}

// Status describes one key set, for debug output.
type Status struct {
	Key      model.JWKSKey
	Fetched  bool
	Failures int
	Error    string
}

// Statuses returns the state of every wanted key set.
func (f *Fetcher) Statuses() []Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Status
	for k, e := range f.entries {
		s := Status{Key: k, Fetched: e.jwks != "", Failures: e.failures}
		if e.lastErr != nil {
			s.Error = e.lastErr.Error()
		}
		out = append(out, s)
	}
	return out
}

// Run fetches due key sets until ctx ends.
func (f *Fetcher) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-t.C:
		}
		next := f.fetchDue(ctx)
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(time.Until(next))
	}
}

// fetchDue fetches every key set whose time has come and returns when the
// next one is due.
func (f *Fetcher) fetchDue(ctx context.Context) time.Time {
	now := time.Now()
	f.mu.Lock()
	due := map[model.JWKSKey]time.Duration{}
	for k, e := range f.entries {
		if !e.next.After(now) {
			due[k] = f.want[k]
		}
	}
	f.mu.Unlock()
	changed := false
	for k, timeout := range due {
		if timeout <= 0 {
			timeout = f.cfg.Timeout
		}
		doc, err := f.fetch(ctx, k, timeout)
		f.mu.Lock()
		e, ok := f.entries[k]
		if ok {
			if err != nil {
				e.failures++
				e.lastErr = err
				e.next = time.Now().Add(min(firstRetry<<min(e.failures-1, 16), f.cfg.MaxRetry))
				f.cfg.Logger.Warn("jwks fetch failed", "uri", k.URI, "issuer", k.Issuer, "failures", e.failures, "kept_last_good", e.jwks != "", "error", err)
			} else {
				if doc != e.jwks {
					changed = true
					f.cfg.Logger.Info("jwks fetched", "uri", k.URI, "issuer", k.Issuer, "bytes", len(doc))
				}
				e.jwks, e.failures, e.lastErr = doc, 0, nil
				e.next = time.Now().Add(f.cfg.Refresh)
			}
		}
		f.mu.Unlock()
	}
	if changed && f.cfg.OnChange != nil {
		f.cfg.OnChange()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	next := time.Now().Add(f.cfg.Refresh)
	for _, e := range f.entries {
		if e.next.Before(next) {
			next = e.next
		}
	}
	return next
}

// fetch gets one key set and checks that mast-proxy can use it.
func (f *Fetcher) fetch(ctx context.Context, k model.JWKSKey, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	uri := k.URI
	if uri == "" {
		disc := strings.TrimSuffix(k.Issuer, "/") + "/.well-known/openid-configuration"
		b, err := f.get(ctx, disc)
		if err != nil {
			return "", fmt.Errorf("openid discovery: %w", err)
		}
		var d struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(b, &d); err != nil || d.JWKSURI == "" {
			return "", fmt.Errorf("openid discovery %s: no jwks_uri", disc)
		}
		uri = d.JWKSURI
	}
	b, err := f.get(ctx, uri)
	if err != nil {
		return "", err
	}
	if _, err := jwtauthn.ParseJWKS(b); err != nil {
		return "", fmt.Errorf("%s: %w", uri, err)
	}
	return string(b), nil
}

func (f *Fetcher) get(ctx context.Context, uri string) ([]byte, error) {
	return httpget.Get(ctx, f.cfg.Client, uri, "application/json", f.cfg.MaxSize)
}
