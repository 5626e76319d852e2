package dashboard

import (
	"slices"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// Node kinds of the service graph.
const (
	KindWorkload = "workload"
	KindService  = "service"
	KindUnknown  = "unknown" // requests from outside the mesh
)

// unknownNode is the graph node of requests whose source is not a mesh workload.
const unknownNode = "unknown"

func workloadID(ns, name string) string { return "workload:" + ns + "/" + name }
func serviceID(host string) string      { return "service:" + host }

// Signals are the golden signals over the rate window.
type Signals struct {
	Rate      float64 `json:"rate"`      // requests per second
	ErrorRate float64 `json:"errorRate"` // share of 5xx responses, 0..1
	// P50 and P99 are latency percentiles in milliseconds; HasLatency is
	// false when no request with a duration was seen in the window.
	P50        float64 `json:"p50"`
	P99        float64 `json:"p99"`
	HasLatency bool    `json:"hasLatency"`
}

// Node is a workload, a service, or the unknown source.
type Node struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	App       string `json:"app,omitempty"`
	Version   string `json:"version,omitempty"`
	// Proxies are the connected proxies of a workload (node IDs).
	Proxies []string `json:"proxies,omitempty"`
	Signals
}

// Edge is the requests from one node to another over the rate window.
type Edge struct {
	Source string `json:"source"`
	Target string `json:"target"`
	Signals
	// Share is this edge's part of its source's outgoing rate (0..1): the
	// weights of a traffic split, from a service node to its workloads.
	Share float64 `json:"share"`
	// Security is "mutual_tls", "none", "mixed" or "unknown", from the
	// destination proxies' connection_security_policy.
	Security string `json:"security"`
}

// Graph is the service graph at one moment.
type Graph struct {
	Time          time.Time `json:"time"`
	WindowSeconds float64   `json:"windowSeconds"`
	Nodes         []Node    `json:"nodes"`
	Edges         []Edge    `json:"edges"`
}

// slot is one scrape round's increments on an edge.
type slot struct {
	tick             uint64
	requests, errors float64
	mtls, plain      float64
	buckets          [numBuckets]float64
	hcount           float64
}

func (s *slot) add(d *series, errs float64) {
	s.requests += d.requests
	s.errors += errs
	if d.hasHist {
		for i := range d.buckets {
			s.buckets[i] += d.buckets[i]
		}
		s.hcount += d.hcount
	}
}

// edgeAcc accumulates one edge's increments over the last window rounds.
type edgeAcc struct {
	slots    []slot
	lastSeen uint64
}

func (e *edgeAcc) slot(tick uint64) *slot {
	s := &e.slots[tick%uint64(len(e.slots))]
	if s.tick != tick {
		*s = slot{tick: tick}
	}
	e.lastSeen = tick
	return s
}

// sum adds the slots of the window ending at tick.
func (e *edgeAcc) sum(tick uint64, into *slot) {
	w := uint64(len(e.slots))
	for i := range e.slots {
		s := &e.slots[i]
		if s.tick == 0 || s.tick+w <= tick || s.tick > tick {
			continue
		}
		into.requests += s.requests
		into.errors += s.errors
		into.mtls += s.mtls
		into.plain += s.plain
		for j := range s.buckets {
			into.buckets[j] += s.buckets[j]
		}
		into.hcount += s.hcount
	}
}

type edgeID struct{ from, to string }

// nodeMeta is what the metrics say about a node.
type nodeMeta struct {
	kind, namespace, name string
}

// Workload is a connected proxy's workload, shown even without traffic.
type Workload struct {
	Namespace, Name, App, Version, ProxyID string
}

// traffic turns scrape rounds into the graph and the signal history. It
// is not safe for concurrent use; the scraper owns it.
type traffic struct {
	window int // rounds in the rate window
	keep   int // rounds of history kept (and of idle edges)

	tick uint64
	// at holds when each of the last window+1 rounds started (by tick
	// modulo its length): rates divide by the time the window really
	// covered, which is longer than window intervals when rounds overran.
	at    []time.Time
	prev  map[string]map[seriesKey]*series // last scrape, by target
	edges map[edgeID]*edgeAcc
	// pairs holds the connection security the destination proxies saw,
	// by (source workload, destination workload): security is known at
	// the destination only, and a service's edges are joined to the
	// workloads behind it through these pairs.
	pairs map[edgeID]*edgeAcc
	meta  map[string]nodeMeta
}

func newTraffic(window int, keep int) *traffic {
	window = max(window, 1)
	return &traffic{window: window, keep: max(keep, 2), at: make([]time.Time, window+1),
		prev: map[string]map[seriesKey]*series{}, edges: map[edgeID]*edgeAcc{}, pairs: map[edgeID]*edgeAcc{}, meta: map[string]nodeMeta{}}
}

// round takes one scrape round, started at at: scraped holds each target
// that answered, live every target that still exists (a target that failed
// this round keeps its previous values, so no increment is lost or counted
// twice).
func (t *traffic) round(at time.Time, scraped map[string]map[seriesKey]*series, live map[string]bool) {
	t.tick++
	t.at[t.tick%uint64(len(t.at))] = at
	for id := range t.prev {
		if !live[id] {
			delete(t.prev, id)
		}
	}
	ids := make([]string, 0, len(scraped))
	for id := range scraped {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		cur := scraped[id]
		old, seen := t.prev[id]
		t.prev[id] = cur
		if !seen {
			continue // the first scrape of a target is its baseline
		}
		for k, s := range cur {
			d := *s
			if p := old[k]; p != nil && s.requests >= p.requests && s.hcount >= p.hcount {
				d.requests -= p.requests
				d.hcount -= p.hcount
				for i := range d.buckets {
					d.buckets[i] = max(0, d.buckets[i]-p.buckets[i])
				}
			} // else: a new series since the last scrape, or a counter reset
			if d.requests == 0 && d.hcount == 0 {
				continue
			}
			t.add(k, &d)
		}
	}
	for _, m := range []map[edgeID]*edgeAcc{t.edges, t.pairs} {
		for id, e := range m {
			if e.lastSeen+uint64(t.keep) <= t.tick {
				delete(m, id)
			}
		}
	}
}

func known(v string) bool { return v != "" && v != metrics.Unknown }

// add records one series' increment on the edges it crosses.
func (t *traffic) add(k seriesKey, d *series) {
	if !known(k.dstService) {
		return
	}
	errs := 0.0
	if strings.HasPrefix(k.code, "5") {
		errs = d.requests
	}
	svc := serviceID(k.dstService)
	t.meta[svc] = nodeMeta{KindService, k.dstSvcNS, firstKnown(k.dstSvcName, k.dstService)}
	dst := ""
	if known(k.dstWL) {
		dst = workloadID(k.dstNS, k.dstWL)
		t.meta[dst] = nodeMeta{KindWorkload, k.dstNS, k.dstWL}
	}
	src := unknownNode
	if known(k.srcWL) {
		src = workloadID(k.srcNS, k.srcWL)
		t.meta[src] = nodeMeta{KindWorkload, k.srcNS, k.srcWL}
	} else {
		t.meta[src] = nodeMeta{KindUnknown, "", "unknown"}
	}
	switch k.reporter {
	case "source":
	case "destination":
		// mTLS is known at the destination only. Requests from mesh
		// workloads are counted by their own proxy; from outside the mesh
		// only here.
		if dst != "" && (k.security == "mutual_tls" || k.security == "none") {
			acc := t.pairs[edgeID{src, dst}]
			if acc == nil {
				acc = &edgeAcc{slots: make([]slot, t.window)}
				t.pairs[edgeID{src, dst}] = acc
			}
			s := acc.slot(t.tick)
			if k.security == "mutual_tls" {
				s.mtls += d.requests
			} else {
				s.plain += d.requests
			}
		}
		if src != unknownNode {
			return
		}
	default:
		return
	}
	for _, e := range []edgeID{{src, svc}, {svc, dst}} {
		if e.to == "" {
			continue
		}
		acc := t.edges[e]
		if acc == nil {
			acc = &edgeAcc{slots: make([]slot, t.window)}
			t.edges[e] = acc
		}
		acc.slot(t.tick).add(d, errs)
	}
}

func firstKnown(vs ...string) string {
	for _, v := range vs {
		if known(v) {
			return v
		}
	}
	return ""
}

// windowSeconds is the time the current rate window covers: from the
// round before its first slot to the latest round (the first round is
// only a baseline).
func (t *traffic) windowSeconds() float64 {
	if t.tick < 2 {
		return 0
	}
	n := min(t.tick-1, uint64(t.window))
	l := uint64(len(t.at))
	return max(t.at[t.tick%l].Sub(t.at[(t.tick-n)%l]).Seconds(), 0)
}

// graph builds the graph of the current window, with every workload in
// workloads as a node even without traffic.
func (t *traffic) graph(now time.Time, workloads []Workload) *Graph {
	g := &Graph{Time: now, WindowSeconds: t.windowSeconds(), Nodes: []Node{}, Edges: []Edge{}}
	nodes := map[string]*Node{}
	node := func(id string) *Node {
		n := nodes[id]
		if n == nil {
			m := t.meta[id]
			n = &Node{ID: id, Kind: m.kind, Namespace: m.namespace, Name: m.name}
			nodes[id] = n
		}
		return n
	}
	for _, w := range workloads {
		n := node(workloadID(w.Namespace, w.Name))
		n.Kind, n.Namespace, n.Name, n.App, n.Version = KindWorkload, w.Namespace, w.Name, w.App, w.Version
		if w.ProxyID != "" {
			n.Proxies = append(n.Proxies, w.ProxyID)
		}
	}
	in := map[string]*slot{}
	out := map[string]float64{}
	type built struct {
		e Edge
		s slot
	}
	var edges []built
	// The workloads behind each service and the callers of each service
	// (edges with traffic in the window), to join the pairs' security.
	behind, callers := map[string][]string{}, map[string][]string{}
	for id, acc := range t.edges {
		var s slot
		acc.sum(t.tick, &s)
		if s.requests == 0 {
			continue
		}
		if strings.HasPrefix(id.from, "service:") {
			behind[id.from] = append(behind[id.from], id.to)
		} else {
			callers[id.to] = append(callers[id.to], id.from)
		}
	}
	pairSecurity := func(from, to []string) string {
		var s slot
		for _, f := range from {
			for _, t2 := range to {
				if acc := t.pairs[edgeID{f, t2}]; acc != nil {
					acc.sum(t.tick, &s)
				}
			}
		}
		return securityOf(&s)
	}
	for id, acc := range t.edges {
		var s slot
		acc.sum(t.tick, &s)
		b := built{e: Edge{Source: id.from, Target: id.to}, s: s}
		b.e.Signals = signals(&s, g.WindowSeconds)
		if strings.HasPrefix(id.from, "service:") {
			b.e.Security = pairSecurity(callers[id.from], []string{id.to})
		} else {
			b.e.Security = pairSecurity([]string{id.from}, behind[id.to])
		}
		edges = append(edges, b)
		node(id.from)
		node(id.to)
		out[id.from] += b.e.Rate
		sum := in[id.to]
		if sum == nil {
			sum = &slot{}
			in[id.to] = sum
		}
		sum.requests += s.requests
		sum.errors += s.errors
		for i := range s.buckets {
			sum.buckets[i] += s.buckets[i]
		}
		sum.hcount += s.hcount
	}
	for _, b := range edges {
		if o := out[b.e.Source]; o > 0 {
			b.e.Share = b.e.Rate / o
		}
		g.Edges = append(g.Edges, b.e)
	}
	for id, n := range nodes {
		if s := in[id]; s != nil {
			n.Signals = signals(s, g.WindowSeconds)
		}
		slices.Sort(n.Proxies)
		g.Nodes = append(g.Nodes, *n)
	}
	slices.SortFunc(g.Nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(g.Edges, func(a, b Edge) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Target, b.Target)
	})
	return g
}

func signals(s *slot, seconds float64) Signals {
	var sig Signals
	if seconds > 0 {
		sig.Rate = s.requests / seconds
	}
	if s.requests > 0 {
		sig.ErrorRate = s.errors / s.requests
	}
	if s.hcount > 0 {
		sig.P50 = quantile(0.5, &s.buckets, s.hcount)
		sig.P99 = quantile(0.99, &s.buckets, s.hcount)
		sig.HasLatency = true
	}
	return sig
}

func securityOf(s *slot) string {
	switch {
	case s.mtls > 0 && s.plain > 0:
		return "mixed"
	case s.mtls > 0:
		return "mutual_tls"
	case s.plain > 0:
		return "none"
	}
	return "unknown"
}

// quantile estimates the q-quantile from cumulative bucket counts over
// Istio's duration bounds, as Prometheus's histogram_quantile does: linear
// interpolation within the bucket; beyond the last finite bound, that bound.
func quantile(q float64, cum *[numBuckets]float64, total float64) float64 {
	rank := q * total
	lower, below := 0.0, 0.0
	for i, c := range cum {
		upper := metrics.DurationBuckets[i]
		if c >= rank && c > below {
			return lower + (upper-lower)*(rank-below)/(c-below)
		}
		lower, below = upper, c
	}
	return metrics.DurationBuckets[numBuckets-1]
}
