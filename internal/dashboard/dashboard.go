// Package dashboard is mastd's built-in web UI (/ui/ on the monitoring
// port): the service graph and golden signals, live from the standard
// metrics that mastd scrapes from each connected proxy (no Prometheus
// needed), the configuration with its analysis, the proxies' sync state
// and certificates, and the security policy of each workload. The page is
// plain HTML, CSS and JavaScript embedded in the binary; it updates over
// server-sent events.
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/analyze"
	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/store"
	"github.com/mast-mesh/mast/internal/pilot/ads"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

//go:embed ui
var assets embed.FS

// Config is what the dashboard reads, passed down from mastd.
type Config struct {
	// Proxies returns the connected proxies; Status their xDS state.
	Proxies func() []*model.Proxy
	Status  func() []ads.ProxyStatus
	// PushContext returns the latest push context (nil before the first).
	PushContext func() *model.PushContext
	// Store returns the configuration in force and the store's status.
	Store func() (*config.Snapshot, store.Status)
	// Certificates returns the latest certificate issued per identity
	// (nil when mastd runs no CA).
	Certificates func() []Certificate
	TrustDomain  string

	// ScrapeInterval is the time between scrape rounds (default 2s),
	// ScrapeTimeout a scrape's limit (default the interval), Window the
	// span rates and percentiles are computed over (default 10s), History
	// how long the charts reach back (default 5m).
	ScrapeInterval, ScrapeTimeout, Window, History time.Duration
	// ScrapeConcurrency bounds scrapes in flight (default 16).
	ScrapeConcurrency int
	// MaxClients bounds open event streams (default 64).
	MaxClients int
	Logger     *slog.Logger
}

func (c *Config) defaults() {
	if c.ScrapeInterval <= 0 {
		c.ScrapeInterval = 2 * time.Second
	}
	if c.ScrapeTimeout <= 0 {
		c.ScrapeTimeout = c.ScrapeInterval
	}
	if c.Window < c.ScrapeInterval {
		c.Window = max(10*time.Second, c.ScrapeInterval)
	}
	if c.History < c.Window {
		c.History = 5 * time.Minute
	}
	if c.ScrapeConcurrency <= 0 {
		c.ScrapeConcurrency = 16
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Certificates == nil {
		c.Certificates = func() []Certificate { return nil }
	}
}

// Dashboard serves the UI and runs the scraper.
type Dashboard struct {
	cfg     Config
	scraper *scraper
	static  http.Handler

	mu        sync.Mutex
	stateJSON []byte // of the latest round
	graphJSON []byte
	analysis  analysisCache
	affected  affectedCache
	clients   int
}

type analysisCache struct {
	key  string
	msgs []analyze.Message
}

type affectedCache struct {
	pc      *model.PushContext
	proxies string
	m       affected
}

// New returns a dashboard; Run starts its scraper.
func New(cfg Config) *Dashboard {
	cfg.defaults()
	sub, err := fs.Sub(assets, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	d := &Dashboard{cfg: cfg, static: http.FileServerFS(sub)}
	d.scraper = newScraper(&d.cfg)
	return d
}

// Run scrapes the proxies every interval until ctx ends, computing the
// graph and the state after each round.
func (d *Dashboard) Run(ctx context.Context) {
	t := time.NewTicker(d.cfg.ScrapeInterval)
	defer t.Stop()
	for {
		d.scraper.round(ctx)
		if ctx.Err() != nil {
			return
		}
		d.refresh()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh recomputes the state and the JSON of the latest round, then
// wakes the event streams.
func (d *Dashboard) refresh() {
	g, scrapes := d.scraper.latest()
	st := d.state(scrapes)
	sj, err1 := json.Marshal(st)
	gj, err2 := json.Marshal(g)
	if err1 != nil || err2 != nil {
		d.cfg.Logger.Error("dashboard: encoding", "state", err1, "graph", err2)
		return
	}
	d.mu.Lock()
	d.stateJSON, d.graphJSON = sj, gj
	d.mu.Unlock()
	d.scraper.wake()
}

func proxySetKey(ps []*model.Proxy) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.ID)
		b.WriteByte('\n')
	}
	return b.String()
}

// state builds the configuration, proxies and policy views, re-running
// the analysis only when the files or the proxies changed.
func (d *Dashboard) state(scrapes []TargetStatus) *State {
	proxies := d.cfg.Proxies()
	pc := d.cfg.PushContext()
	snap, st := d.cfg.Store()
	pkey := proxySetKey(proxies)
	root := ""
	if pc != nil {
		root = pc.Mesh.RootNamespace
	}
	akey := fmt.Sprintf("%s|%d|%d|%s", st.LastChange, len(st.Rejected), len(st.Files), pkey)
	for _, r := range st.Rejected {
		akey += "|" + r.Path + r.Time.String()
	}
	if d.analysis.key != akey {
		d.analysis = analysisCache{key: akey, msgs: AnalyzeMesh(st, proxies, root)}
	}
	if d.affected.pc != pc || d.affected.proxies != pkey {
		a := affectedCache{pc: pc, proxies: pkey, m: affectedProxies(pc, proxies)}
		d.mu.Lock()
		d.affected = a
		d.mu.Unlock()
	}
	s := &State{
		Config:   configView(snap, st, d.analysis.msgs, d.affected.m),
		Proxies:  proxyViews(proxies, d.cfg.Status(), d.cfg.Certificates(), scrapes, d.cfg.TrustDomain),
		Policies: policyViews(pc, proxies),
	}
	if pc != nil {
		s.Version = pc.Version
	}
	return s
}

// Handler serves the UI under /ui/ (the caller guards it).
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/api/graph", d.serveJSON(func() []byte { d.mu.Lock(); defer d.mu.Unlock(); return d.graphJSON }))
	mux.HandleFunc("GET /ui/api/state", d.serveJSON(func() []byte { d.mu.Lock(); defer d.mu.Unlock(); return d.stateJSON }))
	mux.HandleFunc("GET /ui/api/history", d.serveHistory)
	mux.HandleFunc("GET /ui/api/affected", d.serveAffected)
	mux.HandleFunc("GET /ui/api/events", d.serveEvents)
	mux.Handle("GET /ui/", http.StripPrefix("/ui", d.static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

func (d *Dashboard) serveJSON(get func() []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		b := get()
		if b == nil {
			http.Error(w, "the dashboard has not completed its first scrape yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}
}

// serveHistory answers ?node=ID (repeatable; none: every node).
func (d *Dashboard) serveHistory(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(d.scraper.historyOf(r.URL.Query()["node"]))
}

// serveAffected answers ?key=Kind/namespace/name with every connected
// proxy the resource shapes.
func (d *Dashboard) serveAffected(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	ps := d.affected.m.ids(r.URL.Query().Get("key"), -1)
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ps)
}

// serveEvents streams server-sent events: "graph" after every round and
// "state" whenever it changed, each with the JSON of /ui/api/graph or
// /ui/api/state; the latest of both at once on connection.
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	d.mu.Lock()
	if d.clients >= d.cfg.MaxClients {
		d.mu.Unlock()
		http.Error(w, "too many dashboard event streams", http.StatusServiceUnavailable)
		return
	}
	d.clients++
	d.mu.Unlock()
	defer func() { d.mu.Lock(); d.clients--; d.mu.Unlock() }()
	wake, cancel := d.scraper.subscribe()
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var lastState []byte
	send := func() error {
		d.mu.Lock()
		sj, gj := d.stateJSON, d.graphJSON
		d.mu.Unlock()
		// The graph first: it is what the page draws first, and it is a
		// sixth of the state's size at 1,000 services.
		if gj != nil {
			if _, err := fmt.Fprintf(w, "event: graph\ndata: %s\n\n", gj); err != nil {
				return err
			}
			if err := rc.Flush(); err != nil {
				return err
			}
		}
		if sj != nil && !bytes.Equal(sj, lastState) {
			if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", sj); err != nil {
				return err
			}
			lastState = sj
		}
		return rc.Flush()
	}
	if err := send(); err != nil {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-wake:
			if err := send(); err != nil {
				return
			}
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}
