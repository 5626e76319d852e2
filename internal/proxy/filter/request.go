package filter

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// Conn is what filters know of the downstream connection; computed once per
// connection and shared (read-only) by its requests.
type Conn struct {
	// Principal is the verified peer certificate's identity as Envoy's
	// authenticated principal_name sees it (the first URI SAN, a SPIFFE ID
	// "spiffe://td/ns/N/sa/S"; else the first DNS SAN), "" for plaintext or
	// no client certificate.
	Principal string
	// Namespace and ServiceAccount are parsed from a SPIFFE Principal.
	Namespace, ServiceAccount string
	// Remote is the directly connected peer; Local the address it
	// connected to (the original destination of a redirected connection).
	Remote, Local netip.AddrPort
	// SNI is the server name the client asked for in its TLS hello.
	SNI string
	TLS bool
	// Start is when the connection was accepted (zero for a connection
	// an HTTP chain describes per request).
	Start time.Time
	// Services are what the data plane lends network filters.
	Services *Services
	// Received and Sent count the bytes the terminal filter relayed from
	// and to the downstream; only tcp_proxy counts them (see
	// [CloseFilter]).
	Received, Sent atomic.Int64
	// Meta is the connection's dynamic metadata, recorded by the network
	// filters for the ones after them (rbac's shadow result for ext_authz).
	Meta []Meta
}

// AddMeta records dynamic metadata on the connection.
func (c *Conn) AddMeta(filter, key, value string) {
	c.Meta = append(c.Meta, Meta{Filter: filter, Key: key, Value: value})
}

// LookupMeta returns the value of a filter's dynamic metadata key: the
// latest recorded, as Envoy's metadata merge keeps the last write.
func LookupMeta(meta []Meta, filter, key string) (string, bool) {
	for i := len(meta) - 1; i >= 0; i-- {
		if meta[i].Filter == filter && meta[i].Key == key {
			return meta[i].Value, true
		}
	}
	return "", false
}

// SetPrincipal sets Principal and the namespace and service account a
// SPIFFE ID names.
func (c *Conn) SetPrincipal(id string) {
	c.Principal = id
	c.Namespace, c.ServiceAccount = ParseSPIFFE(id)
}

// ParseSPIFFE returns the namespace and service account of a SPIFFE ID
// "spiffe://<td>/ns/<ns>/sa/<sa>", "" when id is not one.
func ParseSPIFFE(id string) (ns, sa string) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", ""
	}
	_, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return "", ""
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" {
		return "", ""
	}
	return parts[1], parts[3]
}

// RouteConfig is the matched route's per-filter configuration
// (typed_per_filter_config, the most specific of route, virtual host and
// route configuration), keyed by the filter's configured name.
type RouteConfig interface {
	PerFilterConfig(name string) any
}

// JWTResult is what jwt_authn verified, for rbac and telemetry (Istio's
// request.auth.* attributes). Nil when the request carried no valid token.
type JWTResult struct {
	// Principal is "<iss>/<sub>" (Istio's requestPrincipals).
	Principal string
	Issuer    string
	Subject   string
	Audiences []string
	// Presenter is the azp claim.
	Presenter string
	// Claims is the verified payload (JSON-decoded: string, float64, bool,
	// []any, map[string]any).
	Claims map[string]any
}

// Flags are Envoy's response flags a filter set on the request (access
// logs' %RESPONSE_FLAGS%, telemetry's response_flags).
type Flags uint32

// Response flags set by filters.
const (
	FlagFaultAbort     Flags = 1 << iota // FI
	FlagFaultDelay                       // DI
	FlagRBACDenied                       // RBAC
	FlagExtAuthzDenied                   // UAEX
	FlagExtAuthzError                    // UAEX with a failed authorizer
	FlagRateLimited                      // RL
)

var flagNames = [...]string{"FI", "DI", "RBAC", "UAEX", "UAEX", "RL"}

// String renders the flags as Envoy does ("FI,DI"), "" for none.
func (f Flags) String() string {
	if f == 0 {
		return ""
	}
	var b strings.Builder
	last := ""
	for i, n := range flagNames {
		if f&(1<<i) == 0 || n == last {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		last = n
	}
	return b.String()
}

// LocalReply is the answer a filter gives instead of the upstream's.
type LocalReply struct {
	Status  int // 0: none
	Body    string
	Headers headers.List
	// Flag is the response flag shown in x-mast-response-flags.
	Flag string
}

// Services are the data plane's facilities filters may use at request
// time: RPC returns a shared gRPC client connection to target
// (host:port) over mTLS with the proxy's mesh identity (RPC's Close does
// nothing: the data plane owns the connection); ClusterHTTP and ClusterDial
// reach a host of one of the proxy's clusters (Envoy's cluster manager:
// load balancing, connection pools, the cluster's TLS), as ext_authz's
// http_service and envoy_grpc do.
type Services struct {
	RPC    func(target string) (rpc.Conn, error)
	Logger *slog.Logger
	// ClusterHTTP sends req to a host of cluster and returns the
	// response with at most maxBody bytes of its body.
	ClusterHTTP func(ctx context.Context, cluster string, req *HTTPCall, maxBody int) (*HTTPResult, error)
	// ClusterDial opens a connection to a host of cluster for HTTP/2
	// (TLS with ALPN h2 when the cluster's transport socket says so).
	ClusterDial func(ctx context.Context, cluster string) (net.Conn, error)
}

// HTTPCall is a request a filter sends to a cluster.
type HTTPCall struct {
	Method, Authority, Path string
	Header                  headers.List
	Body                    []byte
}

// HTTPResult is a cluster's answer to an HTTPCall.
type HTTPResult struct {
	Status int
	Header headers.List
	Body   []byte
}

// Meta is one piece of dynamic metadata a filter records for telemetry
// and later filters (Envoy's dynamic metadata, flattened).
type Meta struct {
	Filter, Key, Value string
}

// Request is the per-request state the filters of one chain share.
type Request struct {
	// Start is when the request head arrived.
	Start     time.Time
	Method    string
	Authority string // the Host / :authority, as received
	Scheme    string
	// Path is the normalized path with its query: what routing, policy and
	// the upstream all see.
	Path string
	// Headers are the request headers (lower-case names); filters may
	// change them.
	Headers *headers.List
	HTTP2   bool
	Conn    *Conn
	// RemoteIP is the client address after X-Forwarded-For as far as the
	// connection manager trusts it (Envoy's downstream remote address).
	RemoteIP netip.Addr
	// Route is the matched route's per-filter configuration, nil when no
	// route matched.
	Route RouteConfig
	// JWT is filled by jwt_authn, read by rbac.
	JWT *JWTResult
	// Flags and Meta are decisions recorded for telemetry.
	Flags Flags
	Meta  []Meta
	// Details is Envoy's %RESPONSE_CODE_DETAILS% for a filter's local
	// reply ("rbac_access_denied_matched_policy[...]"), "" otherwise.
	Details string
	// Reply is set by LocalReply.
	Reply LocalReply
	// ResponseHeaders are set on the response (upstream or local reply) by
	// the first filter whose EncodeHeaders calls FlushResponseHeaders; the
	// rate-limit filters add x-ratelimit-* here.
	ResponseHeaders headers.List
	// Services are what the data plane lends filters (nil in tests that
	// need none).
	Services *Services
	// ClearRoute asks the connection manager to match the route again
	// after the filters ran, with the headers and Path they left (Envoy's
	// clearRouteCache).
	ClearRoute bool

	metaBuf [4]Meta
	// done are the functions Defer registered.
	done []func()
}

// Defer registers f to run once the request ends: its response sent, the
// client gone, or a later filter's local reply (Envoy's onDestroy).
func (r *Request) Defer(f func()) { r.done = append(r.done, f) }

// RunDone runs the functions Defer registered, last first, and forgets them.
func (r *Request) RunDone() {
	for i := len(r.done) - 1; i >= 0; i-- {
		r.done[i]()
		r.done[i] = nil
	}
	r.done = r.done[:0]
}

// Reset prepares r for a new request, keeping buffers.
func (r *Request) Reset() {
	*r = Request{Meta: r.Meta[:0], Reply: LocalReply{Headers: r.Reply.Headers[:0]}, ResponseHeaders: r.ResponseHeaders[:0], done: r.done[:0]}
}

// LocalReply makes the request end with a local answer and returns Stop.
func (r *Request) LocalReply(status int, body, flag string, extra ...headers.Field) Status {
	r.Reply.Status, r.Reply.Body, r.Reply.Flag = status, body, flag
	r.Reply.Headers = append(r.Reply.Headers[:0], extra...)
	return Stop
}

// FlushResponseHeaders sets r.ResponseHeaders on h (replacing values of
// the same names) and empties them, so that several filters may call it.
func (r *Request) FlushResponseHeaders(h *headers.List) {
	for _, f := range r.ResponseHeaders {
		h.Set(f.Name, f.Value)
	}
	r.ResponseHeaders = r.ResponseHeaders[:0]
}

// AddMeta records dynamic metadata.
func (r *Request) AddMeta(filter, key, value string) {
	if r.Meta == nil {
		r.Meta = r.metaBuf[:0]
	}
	r.Meta = append(r.Meta, Meta{Filter: filter, Key: key, Value: value})
}

// PathOnly is Path without its query.
func (r *Request) PathOnly() string {
	if i := strings.IndexByte(r.Path, '?'); i >= 0 {
		return r.Path[:i]
	}
	return r.Path
}

// Header returns the first value of a request header (lower-case name);
// pseudo-headers :method, :path, :authority and :scheme come from the
// request line, as Envoy's header matchers see them.
func (r *Request) Header(name string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, true
	case ":path":
		return r.Path, true
	case ":authority", "host":
		return r.Authority, r.Authority != ""
	case ":scheme":
		return r.Scheme, r.Scheme != ""
	}
	if r.Headers == nil {
		return "", false
	}
	return r.Headers.Get(name)
}
