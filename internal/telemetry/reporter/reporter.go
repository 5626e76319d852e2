// Package reporter is mast-proxy's side of telemetry: it exchanges workload
// metadata with peers (Istio's x-envoy-peer-metadata headers), and turns
// every finished request or TCP connection into Istio's standard metrics
// and, where the listener asks for them, access log lines. The HTTP and
// TCP proxies call it at fixed points; it keeps no per-request state.
package reporter

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
	"github.com/mast-mesh/mast/internal/telemetry/peer"
)

// Config configures a reporter.
type Config struct {
	// Local is this proxy's workload (peer.FromNode of its node metadata).
	Local telemetry.Peer
	// TrustDomain names SPIFFE identities ("cluster.local").
	TrustDomain string
	// Principal is this proxy's SPIFFE ID, "" without a certificate.
	Principal string
	// MaxSeries caps metric label sets (metrics.DefaultMaxSeries).
	MaxSeries int
	// Stdout receives access logs written to /dev/stdout.
	Stdout io.Writer
	Logger *slog.Logger
}

// Reporter records telemetry for one proxy.
type Reporter struct {
	cfg      Config
	Metrics  *metrics.Registry
	builder  *metrics.Builder
	peers    *peer.Cache
	selfMeta string
	selfID   string
	// selfFrame is this proxy's TCP metadata exchange frame.
	selfFrame []byte
	log       *slog.Logger

	mu    sync.Mutex
	sinks map[string]*accesslog.Sink

	// principals memoizes PeerPrincipal for the peers the cache holds
	// (bounded as it is), so that a response from a mesh peer does not
	// build the same SPIFFE ID again.
	pmu        sync.RWMutex
	principals map[*telemetry.Peer]string
}

// maxPeers bounds the decoded-peer cache and the principals memoized.
const maxPeers = 1024

// New returns a reporter for the workload in cfg.
func New(cfg Config) *Reporter {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = "cluster.local"
	}
	if cfg.Principal == "" && cfg.Local.ServiceAccount != "" && cfg.Local.Namespace != "" {
		cfg.Principal = "spiffe://" + cfg.TrustDomain + "/ns/" + cfg.Local.Namespace + "/sa/" + cfg.Local.ServiceAccount
	}
	return &Reporter{
		cfg:        cfg,
		Metrics:    metrics.New(cfg.MaxSeries),
		builder:    metrics.NewBuilder(metrics.Local{Peer: cfg.Local, Principal: cfg.Principal}),
		peers:      peer.NewCache(maxPeers),
		principals: map[*telemetry.Peer]string{},
		selfMeta:   peer.Encode(&cfg.Local),
		selfFrame:  peer.EncodeExchange(&cfg.Local),
		selfID:     cfg.Local.ID,
		log:        cfg.Logger,
		sinks:      map[string]*accesslog.Sink{},
	}
}

// TakePeer reads and removes the metadata exchange headers from h (a
// request arriving from a peer, or a response coming back from one) and
// returns the peer, nil when it sent none or sent garbage. m, when not
// nil, is the caller's memo of the last peer (peer.Memo), kept from
// request to request: it answers when h carries the values it holds.
func (r *Reporter) TakePeer(h *headers.List, m *peer.Memo) *telemetry.Peer {
	// One pass finds both fields (the first of each, as List.Get), a
	// second removes them all (as List.Del): a request's head has a dozen
	// fields or more, each scan compares every name.
	s := *h
	first := -1 // the first exchange field
	var v, id string
	hasV, hasID := false, false
	for i := range s {
		switch s[i].Name {
		case peer.HeaderMetadata:
			if !hasV {
				v, hasV = s[i].Value, true
			}
		case peer.HeaderMetadataID:
			if !hasID {
				id, hasID = s[i].Value, true
			}
		default:
			continue
		}
		if first < 0 {
			first = i
		}
	}
	if !hasV {
		return nil
	}
	var p *telemetry.Peer
	if m != nil {
		p = r.peers.GetMemo(v, id, m)
	} else {
		p = r.peers.Get(v, id)
	}
	j := first
	for i := first + 1; i < len(s); i++ {
		if n := s[i].Name; n != peer.HeaderMetadata && n != peer.HeaderMetadataID {
			s[j] = s[i]
			j++
		}
	}
	clear(s[j:])
	*h = s[:j]
	return p
}

// AddSelf sets this proxy's metadata exchange headers on h (a request to
// a mesh peer, or a response to one).
func (r *Reporter) AddSelf(h *headers.List) {
	h.Set(peer.HeaderMetadata, r.selfMeta)
	if r.selfID != "" {
		h.Set(peer.HeaderMetadataID, r.selfID)
	}
}

// ExchangeFrame is this proxy's TCP metadata exchange frame (peer.ALPN);
// callers must not modify it.
func (r *Reporter) ExchangeFrame() []byte { return r.selfFrame }

// StripPeerHeaders removes metadata exchange headers a client outside the
// mesh may have sent (they are the proxies' to set). One scan finds that
// there are none, which is what a client sends.
func StripPeerHeaders(h *headers.List) {
	for i := range *h {
		if n := (*h)[i].Name; n == peer.HeaderMetadata || n == peer.HeaderMetadataID {
			h.Del(peer.HeaderMetadata)
			h.Del(peer.HeaderMetadataID)
			return
		}
	}
}

// PeerPrincipal is the SPIFFE ID a peer's metadata names, "" when it names
// no service account. p must not change after the call (TakePeer's peers
// do not: the cache shares them read-only).
func (r *Reporter) PeerPrincipal(p *telemetry.Peer) string {
	if p == nil || p.ServiceAccount == "" || p.Namespace == "" {
		return ""
	}
	r.pmu.RLock()
	id, ok := r.principals[p]
	r.pmu.RUnlock()
	if ok {
		return id
	}
	id = "spiffe://" + r.cfg.TrustDomain + "/ns/" + p.Namespace + "/sa/" + p.ServiceAccount
	r.pmu.Lock()
	if len(r.principals) < maxPeers {
		r.principals[p] = id
	}
	r.pmu.Unlock()
	return id
}

// RequestDone records a finished HTTP request: the standard metrics, then
// the listener's access logs. m, when not nil, is the caller's memo of the
// last series it recorded (metrics.SeriesMemo), kept from request to
// request.
func (r *Reporter) RequestDone(rec *telemetry.Record, logs []accesslog.Config, m *metrics.SeriesMemo) {
	r.Metrics.RecordHTTP(r.builder, rec, m)
	r.writeLogs(rec, logs)
}

// TCPOpened records a new TCP connection and returns its counters.
func (r *Reporter) TCPOpened(rec *telemetry.Record) *metrics.TCP {
	cfg := r.Metrics.Config(metrics.SideOf(rec))
	if cfg.TCPOff() {
		return nil
	}
	var l metrics.Labels
	r.builder.Build(rec, &l)
	cfg.FillCustom(rec, r.builder.Local(), &l)
	t := r.Metrics.TCPSeries(&l)
	t.Opened()
	return t
}

// ReportInterval is how often rec's side adds an open connection's or
// stream's counts to its series (the Telemetry API's reportingInterval).
func (r *Reporter) ReportInterval(rec *telemetry.Record) time.Duration {
	return r.Metrics.Config(metrics.SideOf(rec)).Interval()
}

// GRPCMessages returns the series a gRPC stream's message counts go to (nil
// when both message metrics are off on rec's side, or the cap turned the
// label set away) and how often to add them. Call it once the peer's
// metadata is known (the response head).
func (r *Reporter) GRPCMessages(rec *telemetry.Record) (*metrics.Messages, time.Duration) {
	cfg := r.Metrics.Config(metrics.SideOf(rec))
	if cfg.MessagesOff() {
		return nil, 0
	}
	var l metrics.Labels
	r.builder.BuildMessages(rec, &l)
	cfg.FillCustom(rec, r.builder.Local(), &l)
	return r.Metrics.MessageSeries(&l), cfg.Interval()
}

// TCPDone records a closed TCP connection (t from TCPOpened; its bytes
// were added as the connection went, see ReportInterval) and logs it.
func (r *Reporter) TCPDone(t *metrics.TCP, rec *telemetry.Record, logs []accesslog.Config) {
	t.Closed()
	r.writeLogs(rec, logs)
}

func (r *Reporter) writeLogs(rec *telemetry.Record, logs []accesslog.Config) {
	for i := range logs {
		al := &logs[i]
		if al.Filter != nil && !al.Filter(rec) {
			continue
		}
		s := r.sink(al.Path)
		if s != nil {
			s.Log(al.Format, rec)
		}
	}
}

// sink returns the open sink for path, opening it the first time; sinks
// stay open for the proxy's life (listeners come and go, files do not).
func (r *Reporter) sink(path string) *accesslog.Sink {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sinks[path]; ok {
		return s
	}
	s, err := accesslog.Open(path, r.cfg.Stdout)
	if err != nil {
		r.log.Warn("access log", "path", path, "error", err)
	}
	r.sinks[path] = s
	return s
}

// Close flushes and closes the access log sinks.
func (r *Reporter) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, s := range r.sinks {
		if s != nil {
			s.Close()
		}
		delete(r.sinks, p)
	}
}

// WritePrometheus writes the standard metrics in Prometheus's text format.
func (r *Reporter) WritePrometheus(w io.Writer) error { return r.Metrics.Write(w) }

// WritePrometheusMatching writes the standard metrics whose family name
// keep keeps (nil: all).
func (r *Reporter) WritePrometheusMatching(w io.Writer, keep func(family string) bool) error {
	return r.Metrics.WriteMatching(w, keep)
}

// IsMeshCluster reports whether an upstream cluster is a mesh service
// (Istio's outbound|PORT|SUBSET|HOST names), to which this proxy sends
// its metadata.
func IsMeshCluster(name string) bool { return strings.HasPrefix(name, "outbound|") }
