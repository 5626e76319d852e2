package dashboard

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// maxStatsBytes bounds one proxy's stats response.
const maxStatsBytes = 32 << 20

// Target is one proxy's stats endpoint.
type Target struct {
	ProxyID string `json:"proxy"`
	URL     string `json:"url"`
}

// TargetStatus is the outcome of a target's last scrape.
type TargetStatus struct {
	Target
	LastScrape time.Time `json:"lastScrape,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// StatsTarget returns where proxy p serves its standard metrics, from its
// node metadata (metrics.MetaStatsAddr), or false. The host must be one of
// the proxy's own addresses (INSTANCE_IPS; an unspecified host means its
// first): a proxy cannot point mastd's scraper at another machine.
func StatsTarget(p *model.Proxy) (Target, bool) {
	addr := p.Metadata[metrics.MetaStatsAddr]
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return Target{}, false
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return Target{}, false
	}
	if ip.IsUnspecified() {
		if p.IP() == "" {
			return Target{}, false
		}
		host = p.IP()
	} else if !slices.ContainsFunc(p.IPAddresses, func(a string) bool { return net.ParseIP(a).Equal(ip) }) {
		return Target{}, false
	}
	return Target{ProxyID: p.ID, URL: "http://" + net.JoinHostPort(host, port) + "/stats/prometheus"}, true
}

// WorkloadOf returns the workload a proxy belongs to, named as the proxy
// names itself in the standard metrics (WORKLOAD_NAME, else NAME, else
// the node ID's name).
func WorkloadOf(p *model.Proxy) Workload {
	name := firstNonEmpty(p.Metadata["WORKLOAD_NAME"], p.Metadata["NAME"], p.Name)
	return Workload{Namespace: p.Namespace, Name: name, App: p.Labels["app"], Version: p.Labels["version"], ProxyID: p.ID}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// History is each node's signals over the last rounds, oldest first.
type History struct {
	Times   []time.Time          `json:"times"`
	Signals map[string][]Signals `json:"signals"` // by node ID, aligned with Times
}

// scraper scrapes every proxy each interval and keeps the graph and the
// history of the latest round.
type scraper struct {
	cfg     *Config
	client  *http.Client
	traffic *traffic

	mu      sync.RWMutex
	graph   *Graph
	status  []TargetStatus
	times   []time.Time          // ring, len keep
	history map[string][]Signals // ring per node ID, len keep
	pos     int                  // next ring position
	filled  int
	subs    map[chan struct{}]struct{}
}

func newScraper(cfg *Config) *scraper {
	keep := max(int(cfg.History/cfg.ScrapeInterval), 2)
	return &scraper{
		cfg:     cfg,
		client:  &http.Client{Timeout: cfg.ScrapeTimeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 2 * cfg.ScrapeInterval}},
		traffic: newTraffic(max(int(cfg.Window/cfg.ScrapeInterval), 1), keep),
		graph:   &Graph{Nodes: []Node{}, Edges: []Edge{}},
		times:   make([]time.Time, keep),
		history: map[string][]Signals{},
		subs:    map[chan struct{}]struct{}{},
	}
}

// round scrapes every target (at most cfg.ScrapeConcurrency at once),
// updates the graph and wakes the subscribers.
func (s *scraper) round(ctx context.Context) {
	proxies := s.cfg.Proxies()
	var targets []Target
	workloads := make([]Workload, 0, len(proxies))
	for _, p := range proxies {
		workloads = append(workloads, WorkloadOf(p))
		if t, ok := StatsTarget(p); ok {
			targets = append(targets, t)
		}
	}
	type result struct {
		i      int
		series map[seriesKey]*series
		err    error
	}
	now := time.Now() // the round's start: rates are over the time between starts
	results := make(chan result, len(targets))
	sem := make(chan struct{}, s.cfg.ScrapeConcurrency)
	for i, t := range targets {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			ser, err := s.scrape(ctx, t.URL)
			results <- result{i, ser, err}
		}()
	}
	scraped := map[string]map[seriesKey]*series{}
	live := map[string]bool{}
	status := make([]TargetStatus, len(targets))
	for range targets {
		r := <-results
		t := targets[r.i]
		live[t.ProxyID] = true
		status[r.i] = TargetStatus{Target: t, LastScrape: now}
		if r.err != nil {
			status[r.i].Error = r.err.Error()
			continue
		}
		scraped[t.ProxyID] = r.series
	}
	if ctx.Err() != nil {
		return
	}
	s.traffic.round(now, scraped, live)
	g := s.traffic.graph(now, workloads)
	s.publish(g, status)
}

// statsQuery asks a proxy's /stats/prometheus for only the families
// parseStats reads (mast-proxy's filter parameter matches family names).
func statsQuery() string {
	return "?filter=" + url.QueryEscape("^("+requestsTotal+"|"+requestDuration+")$")
}

// scrape fetches and parses one proxy's standard metrics. It asks for the
// two families it reads; a proxy that ignores the filter sends its whole
// page, which parses the same, and one that refuses it (400) is asked
// again without it.
func (s *scraper) scrape(ctx context.Context, target string) (map[seriesKey]*series, error) {
	resp, err := s.get(ctx, target+statsQuery())
	if err == nil && resp.StatusCode == http.StatusBadRequest {
		resp.Body.Close()
		resp, err = s.get(ctx, target)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "text/plain") {
		return nil, fmt.Errorf("GET %s: content type %q, want Prometheus text", target, ct)
	}
	var page strings.Builder
	n, err := io.Copy(&page, io.LimitReader(resp.Body, maxStatsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", target, err)
	}
	if n > maxStatsBytes {
		return nil, fmt.Errorf("GET %s: more than %d bytes", target, maxStatsBytes)
	}
	if out, ok := parseStatsFast(page.String()); ok {
		return out, nil
	}
	out, err := parseStats(strings.NewReader(page.String()))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", target, err)
	}
	return out, nil
}

func (s *scraper) get(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("stats request: %w", err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	return s.client.Do(req)
}

// publish stores a round's graph and its signals in the history.
func (s *scraper) publish(g *Graph, status []TargetStatus) {
	s.mu.Lock()
	s.graph, s.status = g, status
	keep := len(s.times)
	s.times[s.pos] = g.Time
	present := make(map[string]bool, len(g.Nodes))
	for _, n := range g.Nodes {
		present[n.ID] = true
		h := s.history[n.ID]
		if h == nil {
			h = make([]Signals, keep)
			s.history[n.ID] = h
		}
		h[s.pos] = n.Signals
	}
	for id, h := range s.history {
		if !present[id] {
			h[s.pos] = Signals{}
			if s.idle(h) {
				delete(s.history, id)
			}
		}
	}
	s.pos = (s.pos + 1) % keep
	s.filled = min(s.filled+1, keep)
	s.mu.Unlock()
	s.cfg.Logger.Debug("dashboard round", "nodes", len(g.Nodes), "edges", len(g.Edges), "targets", len(status))
}

func (s *scraper) idle(h []Signals) bool {
	for _, v := range h {
		if v != (Signals{}) {
			return false
		}
	}
	return true
}

// latest returns the latest graph and target status.
func (s *scraper) latest() (*Graph, []TargetStatus) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.graph, s.status
}

// historyOf returns the signal history of the nodes named (all when ids is empty).
func (s *scraper) historyOf(ids []string) History {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keep := len(s.times)
	start := (s.pos - s.filled + keep) % keep
	h := History{Times: make([]time.Time, 0, s.filled), Signals: map[string][]Signals{}}
	for i := range s.filled {
		h.Times = append(h.Times, s.times[(start+i)%keep])
	}
	pick := func(id string, ring []Signals) {
		out := make([]Signals, 0, s.filled)
		for i := range s.filled {
			out = append(out, ring[(start+i)%keep])
		}
		h.Signals[id] = out
	}
	if len(ids) == 0 {
		for id, ring := range s.history {
			pick(id, ring)
		}
	}
	for _, id := range ids {
		if ring := s.history[id]; ring != nil {
			pick(id, ring)
		}
	}
	return h
}

// wake tells every subscriber that a round completed.
func (s *scraper) wake() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for c := range s.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// subscribe returns a channel that receives a value after each round.
func (s *scraper) subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[c] = struct{}{}
	s.mu.Unlock()
	return c, func() {
		s.mu.Lock()
		delete(s.subs, c)
		s.mu.Unlock()
	}
}
