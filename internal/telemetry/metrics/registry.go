// Package metrics records Istio's standard metrics (istio_requests_total,
// istio_request_duration_milliseconds, ...) with Istio's names, labels and
// histogram buckets, and writes them in Prometheus's text format. Recording
// a request for a label set seen before allocates nothing; the number of
// label sets is capped and what the cap turns away is counted.
package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// Metric is one of Istio's standard metrics, named as the Telemetry API's
// MetricSelector names them.
type Metric int

// The standard metrics.
const (
	RequestCount Metric = iota
	RequestDuration
	RequestSize
	ResponseSize
	GRPCRequestMessages
	GRPCResponseMessages
	TCPOpenedConnections
	TCPClosedConnections
	TCPSentBytes
	TCPReceivedBytes
	NumMetrics
)

var metricInfo = [NumMetrics]struct{ selector, name, typ string }{
	{"REQUEST_COUNT", "istio_requests_total", "counter"},
	{"REQUEST_DURATION", "istio_request_duration_milliseconds", "histogram"},
	{"REQUEST_SIZE", "istio_request_bytes", "histogram"},
	{"RESPONSE_SIZE", "istio_response_bytes", "histogram"},
	{"GRPC_REQUEST_MESSAGES", "istio_request_messages_total", "counter"},
	{"GRPC_RESPONSE_MESSAGES", "istio_response_messages_total", "counter"},
	{"TCP_OPENED_CONNECTIONS", "istio_tcp_connections_opened_total", "counter"},
	{"TCP_CLOSED_CONNECTIONS", "istio_tcp_connections_closed_total", "counter"},
	{"TCP_SENT_BYTES", "istio_tcp_sent_bytes_total", "counter"},
	{"TCP_RECEIVED_BYTES", "istio_tcp_received_bytes_total", "counter"},
}

// Name is the metric's Prometheus name.
func (m Metric) Name() string { return metricInfo[m].name }

// TCP reports whether m is a TCP metric.
func (m Metric) TCP() bool { return m >= TCPOpenedConnections }

// Messages reports whether m counts gRPC messages.
func (m Metric) Messages() bool { return m == GRPCRequestMessages || m == GRPCResponseMessages }

// MetricBySelector returns the metric the Telemetry API calls s
// (REQUEST_COUNT, ...).
func MetricBySelector(s string) (Metric, bool) {
	for i, mi := range metricInfo {
		if mi.selector == s {
			return Metric(i), true
		}
	}
	return 0, false
}

// Istio's buckets: durations in milliseconds, sizes in bytes.
var (
	DurationBuckets = [...]float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}
	SizeBuckets     = [...]float64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}
)

// Config says which metrics are recorded and how their labels are shaped
// (the Telemetry API's metrics overrides) for one reporter side. The zero
// Config records every metric with the standard labels.
type Config struct {
	Disabled [NumMetrics]bool
	// Removed[m][l] drops standard label l from metric m.
	Removed [NumMetrics][NumLabels]bool
	// Custom are the side's custom dimensions (tagOverrides naming a new
	// tag), in a fixed order; as many as the configuration names.
	Custom []Dimension
	// ReportInterval is how often a long-lived TCP connection or gRPC
	// stream adds its bytes and messages so far to its series (the
	// Telemetry API's reportingInterval; DefaultReportInterval when 0).
	ReportInterval time.Duration
}

// Dimension is a custom dimension: its label name, its value, and the
// metrics that carry it.
type Dimension struct {
	Name  string
	Value Attr
	In    [NumMetrics]bool
}

// DefaultReportInterval is Istio's stats filter's default TCP reporting
// interval (tcp_reporting_duration; the proxy's code uses 5 s).
const DefaultReportInterval = 5 * time.Second

// Interval is the reporting interval in effect.
func (c *Config) Interval() time.Duration {
	if c.ReportInterval > 0 {
		return c.ReportInterval
	}
	return DefaultReportInterval
}

// HTTPOff reports whether every HTTP request metric is disabled.
func (c *Config) HTTPOff() bool {
	return c.Disabled[RequestCount] && c.Disabled[RequestDuration] && c.Disabled[RequestSize] && c.Disabled[ResponseSize]
}

// MessagesOff reports whether both gRPC message metrics are disabled.
func (c *Config) MessagesOff() bool {
	return c.Disabled[GRPCRequestMessages] && c.Disabled[GRPCResponseMessages]
}

// TCPOff reports whether every TCP metric is disabled.
func (c *Config) TCPOff() bool {
	return c.Disabled[TCPOpenedConnections] && c.Disabled[TCPClosedConnections] && c.Disabled[TCPSentBytes] && c.Disabled[TCPReceivedBytes]
}

// FillCustom makes l carry c's custom dimensions of rec: they are
// evaluated when l is recorded, without allocating.
func (c *Config) FillCustom(rec *telemetry.Record, local *Local, l *Labels) {
	l.cfg, l.rec, l.local = c, rec, local
}

// CustomValues evaluates c's custom dimensions of rec (for tests and
// tools; recording evaluates them in place).
func (c *Config) CustomValues(rec *telemetry.Record, local *Local) []string {
	out := make([]string, len(c.Custom))
	for i := range c.Custom {
		out[i] = or(c.Custom[i].Value.Eval(rec, local))
	}
	return out
}

// Side is a reporter side: the Telemetry API's CLIENT (reporter=source:
// sidecar outbound and gateways) or SERVER (reporter=destination).
type Side int

// The sides.
const (
	Client Side = iota
	Server
	numSides
)

// SideOf is the side a record is reported on.
func SideOf(rec *telemetry.Record) Side {
	if rec.Outbound {
		return Client
	}
	return Server
}

// Registry holds the series of one proxy. A series is keyed by its label
// values encoded in one string (see key.go), so that a label set of any
// number of custom dimensions is looked up without allocating.
type Registry struct {
	max      int
	cfg      [numSides]atomic.Pointer[Config]
	overflow atomic.Uint64

	mu   sync.RWMutex
	http map[string]*httpSeries
	tcp  map[string]*tcpSeries
	msg  map[string]*msgSeries
}

// DefaultMaxSeries caps the label sets per kind (HTTP, TCP) by default.
const DefaultMaxSeries = 10000

// New returns a registry keeping at most maxSeries label sets for HTTP and
// as many for TCP (DefaultMaxSeries if maxSeries <= 0).
func New(maxSeries int) *Registry {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	r := &Registry{max: maxSeries, http: map[string]*httpSeries{}, tcp: map[string]*tcpSeries{}, msg: map[string]*msgSeries{}}
	r.SetConfig(nil)
	return r
}

// SetConfig replaces the configuration of both sides; series recorded so
// far stay and are written in the new shape.
func (r *Registry) SetConfig(c *Config) { r.SetSideConfig(Client, c); r.SetSideConfig(Server, c) }

// SetSideConfig replaces the configuration of one side (nil: the default).
func (r *Registry) SetSideConfig(s Side, c *Config) {
	if c == nil {
		c = &Config{}
	}
	r.cfg[s].Store(c)
}

// Config returns the current configuration of a side.
func (r *Registry) Config(s Side) *Config { return r.cfg[s].Load() }

// Overflow is how many recordings the series cap turned away.
func (r *Registry) Overflow() uint64 { return r.overflow.Load() }

// Series is the number of label sets held (HTTP and TCP).
func (r *Registry) Series() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.http) + len(r.tcp) + len(r.msg)
}

type histogram struct {
	count   atomic.Uint64
	sum     atomic.Uint64 // in the unit's integer base (ns for durations, bytes)
	buckets []atomic.Uint64
}

func (h *histogram) observe(bounds []float64, v float64, raw uint64) {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	if i < len(bounds) {
		h.buckets[i].Add(1)
	}
	h.count.Add(1)
	h.sum.Add(raw)
}

type httpSeries struct {
	requests           atomic.Uint64
	duration, req, res histogram
}

type tcpSeries struct {
	opened, closed, sent, received atomic.Uint64
}

type msgSeries struct {
	request, response atomic.Uint64
}

func newHTTPSeries() *httpSeries {
	// One allocation for all buckets of the three histograms.
	b := make([]atomic.Uint64, len(DurationBuckets)+2*len(SizeBuckets))
	s := &httpSeries{}
	s.duration.buckets = b[:len(DurationBuckets)]
	s.req.buckets = b[len(DurationBuckets) : len(DurationBuckets)+len(SizeBuckets)]
	s.res.buckets = b[len(DurationBuckets)+len(SizeBuckets):]
	return s
}

func lookup[S any](r *Registry, m map[string]*S, l *Labels, mk func() *S) *S {
	var buf [1024]byte
	k := l.appendKey(buf[:0])
	r.mu.RLock()
	s := m[string(k)]
	r.mu.RUnlock()
	if s != nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s = m[string(k)]; s != nil {
		return s
	}
	if len(m) >= r.max {
		r.overflow.Add(1)
		return nil
	}
	s = mk()
	// The key owns its bytes: label values may be slices of a request's
	// buffers (header values).
	m[string(k)] = s
	return s
}

// RecordRequest records one finished HTTP request.
func (r *Registry) RecordRequest(l *Labels, d time.Duration, requestBytes, responseBytes int64) {
	if s := lookup(r, r.http, l, newHTTPSeries); s != nil {
		s.record(d, requestBytes, responseBytes)
	}
}

func (s *httpSeries) record(d time.Duration, requestBytes, responseBytes int64) {
	s.requests.Add(1)
	s.duration.observe(DurationBuckets[:], float64(d)/float64(time.Millisecond), uint64(max(d, 0)))
	s.req.observe(SizeBuckets[:], float64(requestBytes), uint64(max(requestBytes, 0)))
	s.res.observe(SizeBuckets[:], float64(responseBytes), uint64(max(responseBytes, 0)))
}

// TCPSeries returns the counters of a TCP label set, nil when the cap
// turned it away (the caller then records nothing). Connections update it
// as bytes flow, as Envoy's TCP stats do.
func (r *Registry) TCPSeries(l *Labels) *TCP {
	s := lookup(r, r.tcp, l, func() *tcpSeries { return &tcpSeries{} })
	return (*TCP)(s)
}

// MessageSeries returns the gRPC message counters of a label set (the
// caller leaves out the labels Istio's message metrics do not have: see
// Builder.BuildMessages), nil when the cap turned it away.
func (r *Registry) MessageSeries(l *Labels) *Messages {
	return (*Messages)(lookup(r, r.msg, l, func() *msgSeries { return &msgSeries{} }))
}

// Messages is the gRPC message counters of one label set.
type Messages msgSeries

// Add counts request and response messages.
func (m *Messages) Add(request, response uint64) {
	if m == nil {
		return
	}
	if request > 0 {
		m.request.Add(request)
	}
	if response > 0 {
		m.response.Add(response)
	}
}

// TCP is the counters of one TCP label set.
type TCP tcpSeries

// Opened counts an opened connection.
func (t *TCP) Opened() {
	if t != nil {
		t.opened.Add(1)
	}
}

// Closed counts a closed connection.
func (t *TCP) Closed() {
	if t != nil {
		t.closed.Add(1)
	}
}

// Bytes adds bytes sent to and received from the downstream peer.
func (t *TCP) Bytes(sent, received int64) {
	if t == nil {
		return
	}
	if sent > 0 {
		t.sent.Add(uint64(sent))
	}
	if received > 0 {
		t.received.Add(uint64(received))
	}
}
