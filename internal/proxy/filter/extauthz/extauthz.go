// Package extauthz is Envoy's external authorization HTTP filter
// (envoy.filters.http.ext_authz): for every request its
// filter_enabled_metadata selects (Istio: the requests a CUSTOM
// AuthorizationPolicy matches, marked by the shadow RBAC filter before it),
// it asks an authorizer -- a gRPC envoy.service.auth.v3.Authorization/Check
// service or a plain HTTP service, both reached through one of the proxy's
// clusters -- and lets the request through (with the headers the authorizer
// adds), answers with the authorizer's denial (status, headers, body), or,
// when the authorizer cannot be reached, fails closed with status_on_error
// (403) or open with failure_mode_allow.
package extauthz

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// Name is the filter's well-known name.
const Name = "envoy.filters.http.ext_authz"

// TypeURL is its configuration's type URL.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"

// Header names Envoy uses.
const (
	hdrFailureModeAllowed = "x-envoy-auth-failure-mode-allowed"
	hdrPartialBody        = "x-envoy-auth-partial-body"
	hdrHeadersToRemove    = "x-envoy-auth-headers-to-remove"
)

// maxAuthzBody bounds what is read of an HTTP authorizer's answer.
const maxAuthzBody = 64 << 10

// Filter is one configured ext_authz filter; immutable and shared.
type Filter struct {
	name string
	cfg  *Config
	grpc *grpcConn // nil for an HTTP service
}

// bodyFilter is a Filter with with_request_body: the check waits for the
// buffered body.
type bodyFilter struct{ *Filter }

var (
	_ filter.HTTPFilter     = (*Filter)(nil)
	_ filter.ResponseFilter = (*Filter)(nil)
	_ filter.BodyFilter     = bodyFilter{}
)

// New parses the typed config; the gRPC connection is made on first use
// through the proxy's cluster.
func New(name string, a *anypb.Any) (filter.HTTPFilter, error) {
	cfg, err := ParseAny(a)
	if err != nil {
		return nil, err
	}
	return NewFromConfig(name, cfg), nil
}

// NewFromConfig builds the filter of a parsed config.
func NewFromConfig(name string, cfg *Config) filter.HTTPFilter {
	f := &Filter{name: name, cfg: cfg}
	if cfg.GRPC != nil {
		f.grpc = newGRPCConn(cfg.GRPC)
		cleanupWith(f.grpc, f)
	}
	if cfg.Body != nil {
		return bodyFilter{f}
	}
	return f
}

// outcome is the authorizer's decision, parsed from either protocol.
type outcome struct {
	kind   int
	status int // denied: the status to answer
	body   string
	// client: headers for the client (denied reply, or added on success).
	client headers.List
	// mut: request header mutations on OK; remove: headers to delete.
	mut    []headerMut
	remove []string
	// querySet, queryRemove: query parameter mutations.
	querySet    [][2]string
	queryRemove []string
	meta        [][2]string
}

// headerMut is one request header an OK answer sets or appends.
type headerMut struct {
	name, value string
	mode        uint8
}

// Header mutation modes (Envoy's HeaderValueOption append actions).
const (
	modeAppend uint8 = iota
	modeSet
	modeAddIfAbsent
	modeOverwriteIfExists
)

const (
	kindOK = iota
	kindDenied
	kindError
)

// enabled reports whether filter_enabled_metadata selects the request.
func (f *Filter) enabled(r *filter.Request) bool { return f.cfg.Enabled.matches(r.Meta) }

// DecodeHeaders checks the request (or leaves it to DecodeBody when the
// body is to be sent).
func (f *Filter) DecodeHeaders(ctx context.Context, r *filter.Request) filter.Status {
	if !f.enabled(r) {
		return filter.Continue
	}
	return f.check(ctx, r, nil, false)
}

// DecodeHeaders of a body filter defers the check to DecodeBody.
func (b bodyFilter) DecodeHeaders(context.Context, *filter.Request) filter.Status {
	return filter.Continue
}

// DecodeBody checks the request with (up to max_request_bytes of) its body.
func (b bodyFilter) DecodeBody(ctx context.Context, r *filter.Request, body []byte, complete bool) filter.Status {
	if !b.enabled(r) {
		return filter.Continue
	}
	s := b.cfg.Body
	partial := !complete || len(body) > s.MaxBytes
	if partial {
		if !s.AllowPartial {
			r.Flags |= filter.FlagExtAuthzDenied
			return r.LocalReply(413, "Payload Too Large", "UAEX")
		}
		body = body[:min(len(body), s.MaxBytes)]
	}
	if body == nil {
		body = []byte{}
	}
	return b.check(ctx, r, body, partial)
}

// EncodeHeaders adds the headers an OK answer had for the client.
func (f *Filter) EncodeHeaders(r *filter.Request, _ int, h *headers.List) { r.FlushResponseHeaders(h) }

// check asks the authorizer and applies its answer. body is nil when the
// body is not sent.
func (f *Filter) check(ctx context.Context, r *filter.Request, body []byte, partial bool) filter.Status {
	cctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	var out outcome
	var err error
	if f.cfg.GRPC != nil {
		out, err = f.checkGRPC(cctx, r, body, partial)
	} else {
		out, err = f.checkHTTP(cctx, r, body, partial)
	}
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return filter.Stop // the client went away
		}
		if r.Services != nil && r.Services.Logger != nil {
			r.Services.Logger.Debug("ext_authz check failed", "filter", f.name, "error", err)
		}
		out = outcome{kind: kindError}
	}
	for _, m := range out.meta {
		r.AddMeta(f.name, m[0], m[1])
	}
	switch out.kind {
	case kindError:
		r.Flags |= filter.FlagExtAuthzError
		if f.cfg.FailOpen {
			if f.cfg.FailOpenHeader {
				r.Headers.Set(hdrFailureModeAllowed, "true")
			}
			return filter.Continue
		}
		return r.LocalReply(f.cfg.StatusOnError, "", "UAEX")
	case kindDenied:
		r.Flags |= filter.FlagExtAuthzDenied
		b := out.body
		if n := f.cfg.MaxDeniedBody; n > 0 && len(b) > n {
			b = b[:n]
		}
		return r.LocalReply(out.status, b, "UAEX", out.client...)
	}
	changed := f.apply(r, &out)
	if f.cfg.ClearRouteCache && changed {
		r.ClearRoute = true
	}
	return filter.Continue
}

// apply makes an OK answer's mutations; it reports whether the request
// changed.
func (f *Filter) apply(r *filter.Request, out *outcome) bool {
	changed := false
	for _, n := range out.remove {
		n = strings.ToLower(n)
		if n == "host" || !headers.ValidName(n) || !r.Headers.Has(n) {
			continue // pseudo-headers and Host are not the authorizer's to remove
		}
		r.Headers.Del(n)
		changed = true
	}
	for _, m := range out.mut {
		has := r.Headers.Has(m.name)
		switch {
		case m.mode == modeAppend:
			r.Headers.Add(m.name, m.value)
		case m.mode == modeSet, m.mode == modeOverwriteIfExists && has:
			r.Headers.Set(m.name, m.value)
		case m.mode == modeAddIfAbsent && !has:
			r.Headers.Add(m.name, m.value)
		default:
			continue
		}
		changed = true
	}
	if len(out.querySet) > 0 || len(out.queryRemove) > 0 {
		r.Path = mutateQuery(r.Path, out.querySet, out.queryRemove)
		changed = true
	}
	r.ResponseHeaders = append(r.ResponseHeaders, out.client...)
	return changed
}

// mutateQuery sets and removes query parameters of path.
func mutateQuery(path string, set [][2]string, remove []string) string {
	p, q, _ := strings.Cut(path, "?")
	var parts []string
	if q != "" {
		parts = strings.Split(q, "&")
	}
	drop := func(key string) {
		out := parts[:0]
		for _, kv := range parts {
			k, _, _ := strings.Cut(kv, "=")
			if uk, err := url.QueryUnescape(k); err == nil && uk == key || k == key {
				continue
			}
			out = append(out, kv)
		}
		parts = out
	}
	for _, k := range remove {
		drop(k)
	}
	for _, kv := range set {
		drop(kv[0])
		parts = append(parts, url.QueryEscape(kv[0])+"="+url.QueryEscape(kv[1]))
	}
	if len(parts) == 0 {
		return p
	}
	return p + "?" + strings.Join(parts, "&")
}

// checkHeaders returns the client request headers that go into a check:
// the pseudo-headers and every header (repeated ones joined with "," unless
// raw), filtered by allowed_headers / disallowed_headers; for the HTTP
// service the defaults (host, method, path, content-length, authorization)
// are always allowed.
func (f *Filter) checkHeaders(r *filter.Request, httpService bool) headers.List {
	out := make(headers.List, 0, len(*r.Headers)+4)
	keep := func(name string) bool {
		if f.cfg.DisallowedHeaders.matches(name) {
			return false
		}
		if httpService {
			switch name {
			case ":authority", ":method", ":path", "host", "content-length", "authorization":
				return true
			}
			return f.cfg.AllowedHeaders.matches(name)
		}
		return f.cfg.AllowedHeaders == nil || f.cfg.AllowedHeaders.matches(name)
	}
	for _, p := range [...][2]string{{":authority", r.Authority}, {":method", r.Method}, {":path", r.Path}, {":scheme", r.Scheme}} {
		if p[1] != "" && keep(p[0]) {
			out = append(out, headers.Field{Name: p[0], Value: p[1]})
		}
	}
	for _, h := range *r.Headers {
		if !keep(h.Name) {
			continue
		}
		if !f.cfg.EncodeRawHeaders {
			if i := indexOf(out, h.Name); i >= 0 {
				out[i].Value += "," + h.Value
				continue
			}
		}
		out = append(out, h)
	}
	return out
}

func indexOf(l headers.List, name string) int {
	for i := range l {
		if l[i].Name == name {
			return i
		}
	}
	return -1
}

// grpcConn is the filter's lazily made gRPC client connection.
type grpcConn struct {
	svc *GRPCService
	// metadata is the service's initial_metadata, names in lower case
	// (as grpc-go's metadata writes them).
	metadata []rpc.Header
	once     sync.Once
	conn     rpc.Conn
	err      error
	mu       sync.Mutex // guards closed
	done     bool
}

func newGRPCConn(s *GRPCService) *grpcConn {
	g := &grpcConn{svc: s}
	for _, m := range s.Metadata {
		g.metadata = append(g.metadata, rpc.Header{Name: strings.ToLower(m[0]), Value: m[1]})
	}
	return g
}

func contentLength(r *filter.Request) int64 {
	if v, ok := r.Headers.Get("content-length"); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return -1
}
