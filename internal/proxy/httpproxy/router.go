package httpproxy

import (
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/http1"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry"
)

// dsRequest is a downstream request as either codec delivers it.
type dsRequest struct {
	method, target, authority, scheme string
	header                            headers.List
	minor                             int // HTTP/1 minor; 2 for HTTP/2
	body                              io.Reader
	contentLength                     int64
	chunked                           bool
	remote                            string
	// remoteIP is remote parsed (unmapped), when the codec parsed it once
	// for the connection; the zero Addr otherwise.
	remoteIP netip.Addr
	// local is the proxy's address on the downstream connection;
	// localStr its string when the connection keeps one ("" for the codec
	// to leave it to localString).
	local    net.Addr
	localStr string
	// origDst is the original destination of a redirected connection
	// (ORIGINAL_DST clusters connect there), "" when not redirected.
	origDst    string
	onBodyRead func() // sends 100-continue
	// upgrade is the Upgrade header of an HTTP/1.1 upgrade request
	// ("websocket"), "" for none.
	upgrade string
	// noHopByHop: the HTTP/1 head had no hop-by-hop field
	// (http1.Head.HopByHop), so handle has none to strip.
	noHopByHop bool
	// peer is the verified client certificate of a TLS connection, nil
	// for plaintext (xfcc.go).
	peer *tlsPeer
	// start is when the request's first byte arrived, when the codec read
	// the clock then (HTTP/1: its stream timers start there); zero: handle
	// reads it.
	start time.Time
	// conn is what the filters know of the connection; fr and fw are the
	// filter chain's per-request state (filters.go), kept here so that
	// they cost no allocation.
	conn *filter.Conn
	fr   filter.Request
	fw   filterWriter
	// remoteAddr is the downstream peer's ip:port; tel the request's
	// telemetry (telemetry.go).
	remoteAddr string
	tel        telState
	// up is the upstream request forward builds, tb the HTTP/1 body's
	// stream-timer wrapper, and bodyBuf the buffer of a body read whole
	// (kept across uses of the pooled state, up to maxKeptBody): the
	// request's state costs no allocation of its own.
	up      upstream.Request
	tb      timedBody
	bodyBuf []byte
	// route remembers the last request's lookups (routememo.go); reset
	// keeps it.
	route routeMemo
}

// responseWriter is the codec's response side.
type responseWriter interface {
	WriteHead(status int, h headers.List, contentLength int64) error
	Write(p []byte) (int, error)
	Flush() error
	// WriteFlush is Write then Flush (HTTP/2: in one hold of the
	// connection's writer), for a streamed body's chunks.
	WriteFlush(p []byte) (int, error)
	Finish(trailers headers.List) error
	Abort()
	Started() bool
}

// Response flags (Envoy's, for logs and the x-mast-response-flags header of local replies).
const (
	flagNoRoute        = "NR"
	flagNoCluster      = "NC"
	flagNoHealthy      = "UH"
	flagConnectFailure = "UF"
	flagReset          = "UC"
	flagTimeout        = "UT"
	flagOverflow       = "UO"
	flagRetryExhausted = "URX"
	flagFaultAbort     = "FI"
	flagProtocol       = "UPE"
)

func (s *Server) countStatus(status int) {
	s.Stats.RqTotal.Add(1)
	switch status / 100 {
	case 1:
		s.Stats.Rq1xx.Add(1)
	case 2:
		s.Stats.Rq2xx.Add(1)
	case 3:
		s.Stats.Rq3xx.Add(1)
	case 4:
		s.Stats.Rq4xx.Add(1)
	default:
		s.Stats.Rq5xx.Add(1)
	}
}

// localReply answers without an upstream.
func (s *Server) localReply(w responseWriter, status int, body, flag string, extra headers.List) {
	s.countStatus(status)
	h := headers.List{{Name: "content-type", Value: "text/plain"}, {Name: "date", Value: httpDate()}, {Name: "server", Value: "mast-proxy"}}
	if extra.Has("content-type") { // a filter passes another's answer on (ext_authz)
		h = h[1:]
	}
	h = append(h, extra...)
	if flag != "" {
		h = append(h, headers.Field{Name: "x-mast-response-flags", Value: flag})
	}
	if err := w.WriteHead(status, h, int64(len(body))); err != nil {
		w.Abort()
		return
	}
	io.WriteString(w, body)
	if w.Finish(nil) != nil {
		w.Abort()
	}
}

func httpDate() string { return time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT") }

// handle runs one request through routing and upstream and writes the response.
func (s *Server) handle(ctx context.Context, req *dsRequest, w responseWriter, hcm *xdsparse.HTTPManager) {
	start := req.start
	if start.IsZero() {
		start = time.Now()
	}
	s.Stats.RqActive.Add(1)
	done := handleDone{s: s, ctx: ctx, req: req}
	defer done.run()
	// A connection outlives configuration changes: every request follows
	// its listener's current filter chain, so a new policy applies to
	// pooled connections too; a chain that is gone ends the connection.
	if follow, ok := ctx.Value(followKey{}).(func() *xdsparse.HTTPManager); ok {
		cur := follow()
		if cur == nil {
			s.localReply(w, 503, "listener removed", "", headers.List{{Name: "connection", Value: "close"}})
			return
		}
		hcm = cur
	}
	if s.Telemetry != nil {
		w = s.startTelemetry(req, w, hcm, start)
		done.telemetry, done.hcm = true, hcm
	}
	applyXFCC(&req.header, hcm, req.peer)
	// Absolute-form (forward proxy): route by the URI's authority.
	target := req.target
	if !strings.HasPrefix(target, "/") {
		switch {
		case strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://"):
			rest := target[strings.IndexByte(target, ':')+3:]
			auth, path := rest, "/"
			if i := strings.IndexAny(rest, "/?"); i >= 0 {
				auth, path = rest[:i], rest[i:]
				if path[0] == '?' {
					path = "/" + path
				}
			}
			if auth == "" || strings.ContainsAny(auth, "@") {
				s.localReply(w, 400, "invalid absolute URI", "", nil)
				return
			}
			req.authority, target = auth, path
			req.header.Set("host", auth)
		case req.method == "OPTIONS" && target == "*":
			target = "/"
		case req.method == "CONNECT":
			// Authority-form: the target is the authority; there is no path.
			if _, _, err := net.SplitHostPort(target); err != nil {
				s.localReply(w, 400, "invalid CONNECT target", "", nil)
				return
			}
			req.authority = target
		default:
			s.localReply(w, 400, "invalid request target", "", nil)
			return
		}
	}
	path := ""
	if req.method != "CONNECT" {
		var err error
		var redirect bool
		if path, redirect, err = hcm.PathNorm.Normalize(target); err != nil {
			s.localReply(w, 400, "invalid request path", "", nil)
			return
		}
		if redirect {
			s.localReply(w, 307, "", "", headers.List{{Name: "location", Value: path}})
			return
		}
	}
	if req.authority == "" {
		s.localReply(w, 400, "missing authority", "", nil)
		return
	}
	// Internal headers are Envoy's to set (forwarded.go): clients do not
	// get to set them.
	req.header.Del("x-mast-response-flags")
	if !req.noHopByHop {
		http1.StripHopByHop(&req.header)
	}
	req.header.Del("host")
	var client netip.Addr
	if hcm.Filters != nil {
		client = trustedClient(req.header, hcm, req.remote, req.remoteIP)
	}
	edge := mutateForwarded(&req.header, hcm, req.remote, req.local, req.scheme)
	if hcm.GenerateRequestID {
		if v, ok := req.header.Get("x-request-id"); !ok || v == "" || edge && !hcm.PreserveRequestID {
			req.header.Set("x-request-id", newRequestID())
		}
	}
	s.startTrace(req, hcm)

	// Upgrades the connection manager does not list are refused before
	// routing (Envoy answers 403); routes may still turn listed ones off.
	if up := upgradeType(req); up != "" {
		if _, listed := hcm.Upgrades[up]; !listed {
			s.localReply(w, 403, "upgrade not allowed", "", nil)
			return
		}
	}
	cfg := s.cfg.Load()
	table := hcm.Routes
	if table == nil && cfg != nil {
		table = req.route.routeTable(cfg, hcm.RDSName)
	}
	if table != nil && table.VHDS && s.OnDemand != nil && table.VirtualHostForMemo(req.authority, &req.route.vh) == nil {
		table = s.onDemand(ctx, table, hcm.RDSName, req.authority)
	}
	var route *xdsparse.Route
	if table != nil {
		in := xdsparse.Input{Authority: req.authority, Method: req.method, Scheme: req.scheme, Path: path, Headers: req.header}
		route = table.MatchMemo(&in, &req.route.vh)
		req.tel.route = route
		if route != nil && route.Action != nil {
			// As Envoy, the route's cluster is known before the filters
			// run (a fault abort is reported against it).
			req.tel.rec.UpstreamCluster = routeCluster(route.Action)
		}
	}
	// The HTTP filters (rbac, fault, cors, ...) see the request after
	// route selection, as Envoy's filters see the cached route.
	// A chain idle on the route (no fault, no CORS policy, ...) is skipped.
	if hcm.Filters != nil && !req.route.filters.idleOn(hcm.Filters, route) {
		var ok bool
		done.filters = true
		if w, ok = s.runFilters(ctx, req, w, hcm, route, path, client, start); !ok {
			return
		}
		// A filter may have changed the path (ext_authz query parameters)
		// and asked for the route to be matched again (clear_route_cache).
		path = req.fr.Path
		if req.fr.ClearRoute && table != nil {
			in := xdsparse.Input{Authority: req.authority, Method: req.method, Scheme: req.scheme, Path: path, Headers: req.header}
			route = table.MatchMemo(&in, &req.route.vh)
			req.tel.route = route
			if route != nil && route.Action != nil {
				req.tel.rec.UpstreamCluster = routeCluster(route.Action)
			}
		}
	}
	if route != nil && route.VHost.RequireTLS && req.scheme != "https" {
		host := req.authority
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		s.localReply(w, 301, "", "", headers.List{{Name: "location", Value: "https://" + host + path}})
		return
	}
	if route == nil {
		s.Stats.RqNoRoute.Add(1)
		s.localReply(w, 404, "", flagNoRoute, nil)
		return
	}
	if up := upgradeType(req); up != "" && !hcm.UpgradeAllowed(up, route.Action) {
		s.localReply(w, 403, "upgrade not allowed", "", nil)
		return
	}
	switch {
	case route.Direct != nil:
		ops := []*xdsparse.HeaderOps{&route.HeaderOps, &route.VHost.Headers, &table.Headers}
		h := headers.List{{Name: "date", Value: httpDate()}, {Name: "server", Value: "mast-proxy"}}
		if route.Direct.Body != "" {
			h = append(h, headers.Field{Name: "content-type", Value: "text/plain"})
		}
		vars := &opVars{req: req, start: start, route: route, status: route.Direct.Status}
		applyResponseOps(&h, ops, vars)
		s.countStatus(route.Direct.Status)
		if w.WriteHead(route.Direct.Status, h, int64(len(route.Direct.Body))) == nil {
			io.WriteString(w, route.Direct.Body)
			w.Finish(nil)
		}
		return
	case route.Redirect != nil:
		loc := redirectLocation(route, req, path)
		s.localReply(w, route.Redirect.Code, "", "", headers.List{{Name: "location", Value: loc}})
		return
	}
	s.toUpstream(req, hcm, route.Action)
	s.forward(ctx, req, w, hcm, table, route, path, start)
}

// newRequestID is a random (version 4) UUID. Its bits come from
// math/rand/v2's per-thread ChaCha8 generator, seeded by the system:
// a request ID needs to be unique and random enough to sample traces by,
// it is not a secret. crypto/rand cost 0.65-1.3 µs per ID on the
// reference machine, two Uint64 calls about 0.1 µs.
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return uuidString(&b)
}

// uuidString formats b as a UUID, 8-4-4-4-12 lower-case hex digits, four
// bytes at a time (hex8).
func uuidString(b *[16]byte) string {
	var out [36]byte
	h := hex8(binary.BigEndian.Uint32(b[0:]))
	binary.BigEndian.PutUint64(out[0:], h)
	out[8] = '-'
	h = hex8(binary.BigEndian.Uint32(b[4:]))
	binary.BigEndian.PutUint32(out[9:], uint32(h>>32))
	out[13] = '-'
	binary.BigEndian.PutUint32(out[14:], uint32(h))
	out[18] = '-'
	h = hex8(binary.BigEndian.Uint32(b[8:]))
	binary.BigEndian.PutUint32(out[19:], uint32(h>>32))
	out[23] = '-'
	binary.BigEndian.PutUint32(out[24:], uint32(h))
	binary.BigEndian.PutUint64(out[28:], hex8(binary.BigEndian.Uint32(b[12:])))
	return string(out[:])
}

// hex8 returns v's eight lower-case hex digits as the bytes of a uint64,
// the first digit in the most significant byte: each nibble is spread to a
// byte of its own, then offset to '0', and by 'a'-'0'-10 more where it is
// 10 or above (+6 carries into the byte's high nibble exactly then).
func hex8(v uint32) uint64 {
	x := uint64(v)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff
	x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
	letters := (x + 0x0606060606060606) >> 4 & 0x0101010101010101
	return x + 0x3030303030303030 + letters*('a'-'0'-10)
}

func redirectLocation(r *xdsparse.Route, req *dsRequest, path string) string {
	rd := r.Redirect
	scheme := req.scheme
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	host, port := req.authority, ""
	if h, p, err := net.SplitHostPort(req.authority); err == nil {
		host, port = h, p
	}
	if rd.Host != "" {
		// host_redirect replaces the authority; the port only survives
		// through port_redirect.
		host, port = rd.Host, ""
		if h, p, err := net.SplitHostPort(rd.Host); err == nil {
			host, port = h, p
		}
	}
	if rd.Port != 0 {
		port = strconv.Itoa(int(rd.Port))
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") || (rd.Scheme != "" && rd.Scheme != req.scheme && rd.Port == 0) {
		port = ""
	}
	p, q, hasQ := strings.Cut(path, "?")
	switch {
	case rd.Path != "":
		p = rd.Path
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p, q, hasQ = p[:i], p[i+1:], true
		}
	case rd.PrefixRewrite != "" || (r.Kind == xdsparse.PathPrefix && r.Path != ""):
		if rd.PrefixRewrite != "" && r.Kind == xdsparse.PathPrefix {
			p = rd.PrefixRewrite + p[len(r.Path):]
		}
	}
	if rd.StripQuery {
		hasQ = false
	}
	u := scheme + "://" + host
	if port != "" {
		u += ":" + port
	}
	u += p
	if hasQ && q != "" {
		u += "?" + q
	}
	return u
}

// opVars is what the command operators of header values read
// (xdsparse.HeaderValueOp.Format), built once per request when a value
// needs it: the downstream request, then the upstream and its answer.
type opVars struct {
	req   *dsRequest
	start time.Time
	route *xdsparse.Route
	// The response, once there is one.
	status            int
	respHeader        headers.List
	upstream, cluster string
	rec               *telemetry.Record
}

func (v *opVars) record() *telemetry.Record {
	if v.rec == nil {
		v.build()
	}
	v.rec.ResponseCode, v.rec.ResponseHeaders, v.rec.UpstreamHost, v.rec.UpstreamCluster = v.status, v.respHeader, v.upstream, v.cluster
	return v.rec
}

// handleDone is what handle undoes as it returns, in one deferred call:
// handle has too many returns for its three defers to be open-coded. run
// undoes in the order the defers did: the filters' done callbacks, the
// telemetry (hcm: the listener's configuration the request started with),
// the active request count.
type handleDone struct {
	s                  *Server
	ctx                context.Context
	req                *dsRequest
	hcm                *xdsparse.HTTPManager
	telemetry, filters bool
}

func (d *handleDone) run() {
	if d.filters {
		d.req.fr.RunDone()
	}
	if d.telemetry {
		d.s.endTelemetry(d.ctx, d.req, d.hcm)
	}
	d.s.Stats.RqActive.Add(-1)
}

// reset clears r for the next request served with this pooled state,
// keeping its body buffer and the array of the telemetry's response-head
// copy (endTelemetry cleared it), which every response would otherwise
// allocate again, and the telemetry's and the route's memos of the last
// request. It clears in place:
// `*r = dsRequest{bodyBuf: r.bodyBuf, ...}` would build the literal in a
// temporary and copy it (two passes over the 2 KB struct instead of one).
func (r *dsRequest) reset() {
	bodyBuf, respHdr, memo, route := r.bodyBuf, r.tel.respHdr[:0], r.tel.memo, r.route
	*r = dsRequest{}
	r.bodyBuf, r.tel.respHdr, r.tel.memo, r.route = bodyBuf, respHdr, memo, route
}

// localString is the proxy's address on the downstream connection as
// ip:port, "" when unknown; an HTTP/1 connection formats it once.
func (r *dsRequest) localString() string {
	switch {
	case r.localStr != "":
		return r.localStr
	case r.local != nil:
		return r.local.String()
	}
	return ""
}

func (v *opVars) build() {
	r := v.req
	v.rec = &telemetry.Record{Start: v.start, Method: r.method, Path: r.target, Authority: r.authority,
		RequestHeaders: r.header, DownstreamRemote: r.remoteAddr, Protocol: protocolName(r.minor)}
	v.rec.DownstreamLocal = r.localString()
	if r.peer != nil && len(r.peer.uris) > 0 {
		v.rec.DownstreamPrincipal = r.peer.uris[0]
	}
	if r.conn != nil {
		v.rec.RequestedServerName = r.conn.SNI
	}
	if v.route != nil {
		v.rec.RouteName = v.route.Name
	}
}

// value is the value to add for a, and false when a computed value is
// empty (Envoy drops empty custom headers).
func (v *opVars) value(a *xdsparse.HeaderValueOp) (string, bool) {
	if a.Format == nil {
		return a.Value, true
	}
	s := a.Format.HeaderValue(v.record())
	return s, s != ""
}

func protocolName(minor int) string {
	switch minor {
	case 2:
		return "HTTP/2"
	case 0:
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// appendOps appends o to ops unless it has no operations.
func appendOps(ops []*xdsparse.HeaderOps, o *xdsparse.HeaderOps) []*xdsparse.HeaderOps {
	if o.Empty() {
		return ops
	}
	return append(ops, o)
}

func applyRequestOps(h *headers.List, ops []*xdsparse.HeaderOps, authority *string, vars *opVars) {
	for _, o := range ops {
		for _, n := range o.RequestRemove {
			h.Del(n)
		}
		for i := range o.RequestAdd {
			a := &o.RequestAdd[i]
			val, ok := vars.value(a)
			if !ok {
				continue
			}
			if a.Name == "host" {
				*authority = val
				continue
			}
			switch {
			case a.IfAbsent:
				if !h.Has(a.Name) {
					h.Add(a.Name, val)
				}
			case a.Append:
				h.Add(a.Name, val)
			default:
				h.Set(a.Name, val)
			}
		}
	}
}

func applyResponseOps(h *headers.List, ops []*xdsparse.HeaderOps, vars *opVars) {
	for _, o := range ops {
		for _, n := range o.ResponseRemove {
			h.Del(n)
		}
		for i := range o.ResponseAdd {
			a := &o.ResponseAdd[i]
			val, ok := vars.value(a)
			if !ok {
				continue
			}
			switch {
			case a.IfAbsent:
				if !h.Has(a.Name) {
					h.Add(a.Name, val)
				}
			case a.Append:
				h.Add(a.Name, val)
			default:
				h.Set(a.Name, val)
			}
		}
	}
}

// DefaultOnDemandTimeout bounds how long a request waits for its virtual
// host to arrive on demand.
const DefaultOnDemandTimeout = 5 * time.Second

// onDemand asks for the virtual host of authority in the VHDS table and
// returns the table to route with: the one holding the answer, or table
// when the answer did not come (the request then gets no route, 404).
func (s *Server) onDemand(ctx context.Context, table *xdsparse.RouteTable, rdsName, authority string) *xdsparse.RouteTable {
	d := s.OnDemandTimeout
	if d <= 0 {
		d = DefaultOnDemandTimeout
	}
	s.Stats.OnDemand.Add(1)
	octx, cancel := context.WithTimeout(ctx, d)
	err := s.OnDemand(octx, table.Name, strings.ToLower(authority))
	cancel()
	if err != nil {
		s.Stats.OnDemandFailed.Add(1)
		s.log.Debug("on-demand virtual host not received", "route_config", table.Name, "host", authority, "err", err)
		return table
	}
	if cfg := s.cfg.Load(); cfg != nil {
		if t := cfg.Routes[rdsName]; t != nil {
			return t
		}
	}
	return table
}
