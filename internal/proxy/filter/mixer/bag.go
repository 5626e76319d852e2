package mixer

import (
	"hash/maphash"
	"math"
	"net"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/proxy/filter"
)

// reqBag is one request's attributes: the filter's static ones, those the
// source forwarded, and those read from the request on demand (so a cache
// hit hashes only what the cached answer referenced, without building a
// map). For the TCP filter it is one connection's: r then carries only the
// connection, and conn its attributes.
type reqBag struct {
	r       *filter.Request
	static  map[string]any // global then service mixer_attributes
	fwd     map[string]any // forwarded by the source's proxy
	now     time.Time      // request.time
	resp    time.Time      // response.time, zero before the response
	code    int64          // response.code, 0 before the response
	respHdr map[string]string
	conn    *connAttrs // a TCP connection's, nil for a request
}

// connAttrs are the connection.* attributes of a TCP connection's Check or
// Report (Istio's TCP filter): byte counts since the last Report and in
// total, and the event reported.
type connAttrs struct {
	id                      string
	event                   string // open, continue, close; "" in a Check
	received, receivedTotal int64
	sent, sentTotal         int64
	duration                time.Duration
}

// connNames are the attributes a connection's bag may hold besides the
// static ones.
var connNames = []string{"source.ip", "source.port", "source.principal", "source.user", "source.namespace", "destination.ip",
	"destination.port", "connection.mtls", "connection.requested_server_name", "connection.id", "context.protocol", "context.time",
	"connection.event", "connection.received.bytes", "connection.received.bytes_total", "connection.sent.bytes",
	"connection.sent.bytes_total", "connection.duration"}

// connGet returns a connection's own attribute; done reports whether name
// is one the connection answers for (present or not), so that no request
// attribute is made up for a connection.
func (b *reqBag) connGet(name string) (v any, ok, done bool) {
	c := b.conn
	switch name {
	case "context.protocol":
		return "tcp", true, true
	case "context.time":
		return b.now, true, true
	case "connection.id":
		return c.id, true, true
	case "source.port":
		if b.r.Conn != nil && b.r.Conn.Remote.IsValid() {
			return int64(b.r.Conn.Remote.Port()), true, true
		}
		return nil, false, true
	}
	if c.event == "" {
		if strings.HasPrefix(name, "connection.") && name != "connection.mtls" && name != "connection.requested_server_name" {
			return nil, false, true
		}
	} else {
		switch name {
		case "connection.event":
			return c.event, true, true
		case "connection.received.bytes":
			return c.received, true, true
		case "connection.received.bytes_total":
			return c.receivedTotal, true, true
		case "connection.sent.bytes":
			return c.sent, true, true
		case "connection.sent.bytes_total":
			return c.sentTotal, true, true
		case "connection.duration":
			return c.duration, true, true
		}
	}
	if strings.HasPrefix(name, "request.") || strings.HasPrefix(name, "response.") {
		return nil, false, true
	}
	return nil, false, false
}

var (
	_ attribute.Bag    = (*reqBag)(nil)
	_ attribute.Ranger = (*reqBag)(nil)
)

// requestAttrs are the attributes read from the request itself.
var requestAttrs = []string{"request.headers", "request.host", "request.method", "request.path", "request.url_path",
	"request.scheme", "request.useragent", "request.referer", "request.id", "request.time", "source.ip", "source.principal",
	"source.user", "source.namespace", "destination.ip", "destination.port", "connection.mtls", "connection.requested_server_name",
	"context.protocol", "request.auth.principal", "request.auth.audiences", "request.auth.presenter", "request.auth.claims",
	"response.code", "response.headers", "response.time", "response.duration"}

// requestAttrSet and connNameSet are requestAttrs and connNames as sets.
var requestAttrSet, connNameSet = nameSet(requestAttrs), nameSet(connNames)

func nameSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Names implements attribute.Bag.
func (b *reqBag) Names() []string {
	var out []string
	b.Range(func(name string, _ any) { out = append(out, name) })
	return out
}

// Range implements attribute.Ranger: every attribute once, with the value
// Get gives it, reading each once.
func (b *reqBag) Range(f func(name string, v any)) {
	names, own := requestAttrs, requestAttrSet
	if b.conn != nil {
		names, own = connNames, connNameSet
	}
	for _, n := range names {
		if v, ok := b.Get(n); ok {
			f(n, v)
		}
	}
	// Get's order: the request's own attributes (done above), a
	// destination.* static attribute, a forwarded one, a static one.
	for n, v := range b.fwd {
		if _, shadowed := b.static[n]; own[n] || shadowed && strings.HasPrefix(n, "destination.") {
			continue
		}
		f(n, v)
	}
	for n, v := range b.static {
		if _, shadowed := b.fwd[n]; own[n] || shadowed && !strings.HasPrefix(n, "destination.") {
			continue
		}
		if b.conn != nil {
			if _, _, connOwn := b.connGet(n); connOwn {
				continue // request.* and the like: a connection has none
			}
		}
		f(n, v)
	}
}

func principal(p string) string { return strings.TrimPrefix(p, "spiffe://") }

// str returns a string-valued request attribute without allocating.
func (b *reqBag) str(name string) (string, bool) {
	r := b.r
	switch name {
	case "request.host":
		return r.Authority, r.Authority != ""
	case "request.method":
		return r.Method, r.Method != ""
	case "request.path":
		return r.Path, r.Path != ""
	case "request.url_path":
		return r.PathOnly(), r.Path != ""
	case "request.scheme":
		return r.Scheme, r.Scheme != ""
	case "request.useragent":
		return r.Header("user-agent")
	case "request.referer":
		return r.Header("referer")
	case "request.id":
		return r.Header("x-request-id")
	case "source.principal", "source.user":
		if r.Conn != nil && r.Conn.Principal != "" {
			return principal(r.Conn.Principal), true
		}
	case "source.namespace":
		if r.Conn != nil && r.Conn.Namespace != "" {
			return r.Conn.Namespace, true
		}
	case "connection.requested_server_name":
		if r.Conn != nil && r.Conn.SNI != "" {
			return r.Conn.SNI, true
		}
	case "context.protocol":
		if ct, _ := r.Header("content-type"); strings.HasPrefix(ct, "application/grpc") {
			return "grpc", true
		}
		return "http", true
	case "request.auth.principal":
		if r.JWT != nil {
			return r.JWT.Principal, true
		}
	case "request.auth.audiences":
		if r.JWT != nil {
			return strings.Join(r.JWT.Audiences, ","), true
		}
	case "request.auth.presenter":
		if r.JWT != nil && r.JWT.Presenter != "" {
			return r.JWT.Presenter, true
		}
	}
	return "", false
}

// Get implements attribute.Bag. Request attributes win over forwarded
// ones (a source cannot claim this request's path), forwarded over
// static ones except the destination's own.
func (b *reqBag) Get(name string) (any, bool) {
	if b.conn != nil {
		if v, ok, done := b.connGet(name); done {
			return v, ok
		}
	}
	if s, ok := b.str(name); ok {
		return s, true
	}
	r := b.r
	switch name {
	case "request.headers":
		m := map[string]string{":method": r.Method, ":path": r.Path}
		if r.Authority != "" {
			m[":authority"] = r.Authority
		}
		if r.Scheme != "" {
			m[":scheme"] = r.Scheme
		}
		if r.Headers != nil {
			for _, f := range *r.Headers {
				if _, dup := m[f.Name]; !dup {
					m[f.Name] = f.Value
				}
			}
		}
		return m, true
	case "request.time":
		return b.now, true
	case "source.ip":
		if r.RemoteIP.IsValid() {
			return attribute.NormalizeIP(net.IP(r.RemoteIP.AsSlice())), true
		}
	case "destination.ip":
		if r.Conn != nil && r.Conn.Local.IsValid() {
			return attribute.NormalizeIP(net.IP(r.Conn.Local.Addr().AsSlice())), true
		}
	case "destination.port":
		if r.Conn != nil && r.Conn.Local.IsValid() {
			return int64(r.Conn.Local.Port()), true
		}
	case "connection.mtls":
		return r.Conn != nil && r.Conn.TLS && r.Conn.Principal != "", true
	case "request.auth.claims":
		if r.JWT != nil {
			m := map[string]string{}
			for k, v := range r.JWT.Claims {
				if s, ok := v.(string); ok {
					m[k] = s
				}
			}
			return m, true
		}
	case "response.code":
		if b.code != 0 {
			return b.code, true
		}
	case "response.headers":
		if b.respHdr != nil {
			return b.respHdr, true
		}
	case "response.time":
		if !b.resp.IsZero() {
			return b.resp, true
		}
	case "response.duration":
		if !b.resp.IsZero() {
			return b.resp.Sub(b.now), true
		}
	}
	if strings.HasPrefix(name, "destination.") {
		if v, ok := b.static[name]; ok {
			return v, true
		}
	}
	if v, ok := b.fwd[name]; ok {
		return v, true
	}
	v, ok := b.static[name]
	return v, ok
}

// hash writes one referenced attribute (or map key) into h and reports
// whether it is present; it allocates nothing for what requests carry.
func (b *reqBag) hash(h *maphash.Hash, name, key string, isKey bool) bool {
	if b.conn != nil {
		return b.hashGet(h, name, key, isKey)
	}
	if isKey {
		if name == "request.headers" {
			v, ok := b.r.Header(key)
			h.WriteString(v)
			return ok
		}
		return b.hashGet(h, name, key, isKey)
	}
	if s, ok := b.str(name); ok {
		h.WriteString(s)
		return true
	}
	switch name {
	case "request.headers":
		h.WriteString(b.r.Method)
		h.WriteString(b.r.Path)
		h.WriteString(b.r.Authority)
		if b.r.Headers != nil {
			for _, f := range *b.r.Headers {
				h.WriteString(f.Name)
				h.WriteByte(0)
				h.WriteString(f.Value)
				h.WriteByte(0)
			}
		}
		return true
	case "source.ip":
		if !b.r.RemoteIP.IsValid() {
			return false
		}
		a := b.r.RemoteIP.As16()
		h.Write(a[:])
		return true
	}
	return b.hashGet(h, name, key, isKey)
}

// hashGet hashes what Get returns.
func (b *reqBag) hashGet(h *maphash.Hash, name, key string, isKey bool) bool {
	v, ok := b.Get(name)
	if !ok {
		return false
	}
	if isKey {
		m, _ := v.(map[string]string)
		s, ok := m[key]
		h.WriteString(s)
		return ok
	}
	hashValue(h, v)
	return true
}

func hashValue(h *maphash.Hash, v any) {
	switch x := v.(type) {
	case string:
		h.WriteString(x)
	case int64:
		writeUint(h, uint64(x))
	case float64:
		writeUint(h, math.Float64bits(x))
	case bool:
		if x {
			h.WriteByte(1)
		} else {
			h.WriteByte(0)
		}
	case []byte:
		h.Write(x)
	case time.Time:
		writeUint(h, uint64(x.UnixNano()))
	case time.Duration:
		writeUint(h, uint64(x))
	case map[string]string:
		// Order-independent: sum of per-entry hashes.
		var sum uint64
		for k, val := range x {
			var e maphash.Hash
			e.SetSeed(entrySeed)
			e.WriteString(k)
			e.WriteByte(0)
			e.WriteString(val)
			sum += e.Sum64()
		}
		writeUint(h, sum)
	}
}

var entrySeed = maphash.MakeSeed()

func writeUint(h *maphash.Hash, u uint64) {
	var b [8]byte
	for i := range b {
		b[i] = byte(u >> (8 * i))
	}
	h.Write(b[:])
}
