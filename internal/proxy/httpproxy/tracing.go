package httpproxy

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/spans"
	"github.com/mast-mesh/mast/internal/telemetry/tracing"
)

// Tracers is where sampled requests' spans go (one tracer per collector).
type Tracers = spans.Registry

// traceState is a request's tracing, kept in its telState.
type traceState struct {
	on      bool
	sampled bool
	span    tracing.SpanContext
	parent  tracing.SpanContext
}

// startTrace joins or starts the request's trace when its connection
// manager traces: it reads the incoming context, decides sampling, gives
// the request a new span and writes its context into the request headers
// the next hop (the application, or the upstream) receives. Unsampled
// requests are propagated too, and cost no SDK call.
func (s *Server) startTrace(req *dsRequest, hcm *xdsparse.HTTPManager) {
	ts := &req.tel.trace
	*ts = traceState{}
	tc := hcm.Tracing
	if tc == nil || s.Tracers == nil {
		return
	}
	in, ok := tracing.Extract(req.header)
	ts.on = true
	ts.sampled = tc.Decide(in.Decision, req.header, func() float64 { return rand.Float64() * 100 })
	ts.span = tracing.SpanContext{TraceState: in.TraceState, B3Single: in.B3Single}
	if ok {
		ts.parent = in
		ts.span.TraceID = in.TraceID
	} else {
		randomID(ts.span.TraceID[:])
		if tc.Provider.Kind == tracing.Zipkin && !tc.Provider.TraceID128 {
			clear(ts.span.TraceID[:8])
		}
	}
	randomID(ts.span.SpanID[:])
	tracing.Inject(&req.header, &ts.span, &ts.parent, ts.sampled)
}

func randomID(b []byte) {
	for {
		for i := 0; i < len(b); i += 8 {
			v := rand.Uint64()
			for j := 0; j < 8 && i+j < len(b); j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		for _, c := range b {
			if c != 0 {
				return
			}
		}
	}
}

// endTrace reports a sampled request's span, named by its route's
// decorator and tagged as Envoy tags its spans.
func (s *Server) endTrace(req *dsRequest, hcm *xdsparse.HTTPManager, rec *telemetry.Record) {
	ts := &req.tel.trace
	tc := hcm.Tracing
	if !ts.on || !ts.sampled || tc == nil {
		return
	}
	t, err := s.Tracers.Get(tc.Provider)
	if err != nil {
		s.log.Warn("tracing", "error", err)
		return
	}
	sp := &spans.Span{Kind: spans.Client, Context: ts.span, Parent: ts.parent, Start: rec.Start,
		End: rec.Start.Add(rec.Duration), Attributes: spanTags(req, tc, rec, s.Tracers)}
	if hcm.Inbound {
		sp.Kind = spans.Server
	}
	if route := req.tel.route; route != nil && route.Operation != "" {
		sp.Name = route.Operation
	} else {
		// Envoy's default operation name: the host and path.
		sp.Name = rec.Authority + pathOnly(rec.Path)
	}
	sp.Error = rec.ResponseCode >= 500 || rec.ResponseCode == 0 || rec.Flags != 0 && rec.ResponseCode >= 400
	t.Report(sp)
}

func pathOnly(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '?' {
			return p[:i]
		}
	}
	return p
}

// spanTags are Envoy's standard span tags plus the configured custom tags.
func spanTags(req *dsRequest, tc *tracing.Config, rec *telemetry.Record, reg *spans.Registry) []spans.Attr {
	url := req.scheme + "://" + rec.Authority + rec.Path
	if tc.MaxPathTagLength > 0 && len(url) > tc.MaxPathTagLength {
		url = url[:tc.MaxPathTagLength]
	}
	flags := rec.Flags.String()
	if flags == "" {
		flags = "-"
	}
	peerAddr := rec.DownstreamRemote
	if h, _, err := net.SplitHostPort(peerAddr); err == nil {
		peerAddr = h
	}
	node, zone := reg.Node()
	tags := []spans.Attr{
		{Key: "node_id", Value: node},
		{Key: "zone", Value: zone},
		{Key: "guid:x-request-id", Value: rec.RequestHeaders.Value("x-request-id")},
		{Key: "http.url", Value: url},
		{Key: "http.method", Value: rec.Method},
		{Key: "downstream_cluster", Value: orDash(rec.RequestHeaders.Value("x-envoy-downstream-service-cluster"))},
		{Key: "user_agent", Value: orDash(rec.RequestHeaders.Value("user-agent"))},
		{Key: "http.protocol", Value: rec.Protocol},
		{Key: "peer.address", Value: peerAddr},
		{Key: "request_size", Value: strconv.FormatInt(rec.BytesReceived, 10)},
		{Key: "response_size", Value: strconv.FormatInt(rec.BytesSent, 10)},
		{Key: "component", Value: "proxy"},
		{Key: "http.status_code", Value: strconv.Itoa(rec.ResponseCode)},
		{Key: "response_flags", Value: flags},
	}
	if rec.UpstreamCluster != "" {
		tags = append(tags, spans.Attr{Key: "upstream_cluster", Value: rec.UpstreamCluster},
			spans.Attr{Key: "upstream_cluster.name", Value: rec.UpstreamCluster})
	}
	if rec.UpstreamHost != "" {
		tags = append(tags, spans.Attr{Key: "upstream_address", Value: rec.UpstreamHost})
	}
	for _, ct := range tc.CustomTags {
		v := ct.Literal
		switch {
		case ct.Env != "":
			var ok bool
			if v, ok = os.LookupEnv(ct.Env); !ok {
				v = ct.Default
			}
		case ct.Header != "":
			var ok bool
			if v, ok = rec.RequestHeaders.Get(ct.Header); !ok {
				v = ct.Default
			}
		}
		if v != "" {
			tags = append(tags, spans.Attr{Key: ct.Tag, Value: v})
		}
	}
	return tags
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
