package extauthz

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// The Check call's messages are written and read with protowire instead of
// go-control-plane's generated envoy.service.auth.v3 types (which would
// link, and initialise at start, core/v3, type/v3, matcher/v3 and cncf/xds
// into mast-proxy). checkwire_test.go proves both directions against the
// generated types.

// Field numbers of envoy.service.auth.v3.AttributeContext and the messages
// it holds.
const (
	attrSource      = 1 // AttributeContext.source (Peer)
	attrDestination = 2 // AttributeContext.destination (Peer)
	attrRequest     = 4 // AttributeContext.request (Request)
	attrTLSSession  = 12

	peerAddress   = 1 // Peer.address (config.core.v3.Address)
	peerPrincipal = 4

	addrSocket       = 1 // Address.socket_address
	socketAddress    = 2 // SocketAddress.address
	socketPortValue  = 3 // SocketAddress.port_value (oneof port_specifier)
	tlsSessionSNI    = 1
	requestTime      = 1 // Request.time (Timestamp)
	requestHTTP      = 2 // Request.http (HttpRequest)
	httpID           = 1
	httpMethod       = 2
	httpHeaders      = 3 // map<string, string>
	httpPath         = 4
	httpHost         = 5
	httpScheme       = 6
	httpSize         = 9
	httpProtocol     = 10
	httpBody         = 11
	httpRawBody      = 12
	httpHeaderMap    = 13 // config.core.v3.HeaderMap
	headerMapHeaders = 1  // HeaderMap.headers (HeaderValue)
	headerValueKey   = 1
	headerValueRaw   = 3 // HeaderValue.raw_value
)

// Field numbers of envoy.service.auth.v3.CheckResponse and what it holds
// (wire_gen.go has the whole table).
const (
	respStatus          = 1 // google.rpc.Status
	respDenied          = 2 // DeniedHttpResponse
	respOK              = 3 // OkHttpResponse
	respDynamicMetadata = 4 // google.protobuf.Struct

	dnStatus  = 1 // type.v3.HttpStatus
	dnHeaders = 2
	dnBody    = 3

	okHeaders              = 2
	okDynamicMetadata      = 3
	okHeadersToRemove      = 5
	okResponseHeadersToAdd = 6
	okQuerySet             = 7
	okQueryRemove          = 8

	hvoHeader       = 1 // HeaderValueOption.header (HeaderValue)
	hvoAppend       = 2 // google.protobuf.BoolValue
	hvoAppendAction = 3

	// HeaderValueOption.HeaderAppendAction values.
	actionAddIfAbsent            = 1
	actionOverwriteIfExistsOrAdd = 2
	actionOverwriteIfExists      = 3

	structFields   = 1 // Struct.fields, map<string, Value>
	valueNumber    = 2
	valueString    = 3
	valueBool      = 4
	queryParamKey  = 1
	queryParamVal  = 2
	boolValueValue = 1
)

// checkRequest encodes the CheckRequest for r as Envoy builds it: the
// request's attributes (time, the HTTP fields, the headers, the body when
// sent) and the connection's peers.
func (f *Filter) checkRequest(r *filter.Request, body []byte, partial bool, now time.Time) ([]byte, error) {
	h := f.checkHeaders(r, false)
	if body != nil {
		h = append(h, headers.Field{Name: hdrPartialBody, Value: boolString(partial)})
	}
	e := &pbwire.Enc{}
	attrs := e.Begin(1) // CheckRequest.attributes
	req := e.Begin(attrRequest)
	t := e.Begin(requestTime)
	e.Varint(1, uint64(now.Unix()))
	e.Varint(2, uint64(int64(now.Nanosecond())))
	e.End(t)
	hr := e.Begin(requestHTTP)
	id, _ := r.Headers.Get("x-request-id")
	e.String(httpID, "id", id)
	e.String(httpMethod, "method", r.Method)
	if f.cfg.EncodeRawHeaders {
		hm := e.Begin(httpHeaderMap)
		for _, x := range h {
			hv := e.Begin(headerMapHeaders)
			e.String(headerValueKey, "key", x.Name)
			e.Bytes(headerValueRaw, []byte(x.Value))
			e.End(hv)
		}
		e.End(hm)
	} else {
		for _, x := range h {
			e.MapEntry(httpHeaders, "headers", x.Name, strings.ToValidUTF8(x.Value, "!"))
		}
	}
	e.String(httpPath, "path", r.Path)
	e.String(httpHost, "host", r.Authority)
	e.String(httpScheme, "scheme", r.Scheme)
	e.Varint(httpSize, uint64(contentLength(r)))
	protocol := "HTTP/1.1"
	if r.HTTP2 {
		protocol = "HTTP/2"
	}
	e.String(httpProtocol, "protocol", protocol)
	if body != nil {
		if f.cfg.Body.PackAsBytes {
			e.Bytes(httpRawBody, body)
		} else {
			e.String(httpBody, "body", strings.ToValidUTF8(string(body), "\uFFFD"))
		}
	}
	e.End(hr)
	e.End(req)
	if r.Conn != nil {
		appendConnAttributes(e, r.Conn, f.cfg.IncludeTLSSession)
	}
	e.End(attrs)
	return e.B, e.Err()
}

// networkCheckRequest encodes the CheckRequest for a connection: its peers
// only.
func networkCheckRequest(c *filter.Conn, tlsSession bool) ([]byte, error) {
	e := &pbwire.Enc{}
	attrs := e.Begin(1)
	appendConnAttributes(e, c, tlsSession)
	e.End(attrs)
	return e.B, e.Err()
}

// appendConnAttributes writes the connection's peers as Envoy does: the
// source's address and the principal of its verified certificate, the
// destination's address, and with tlsSession the SNI of a TLS connection.
func appendConnAttributes(e *pbwire.Enc, c *filter.Conn, tlsSession bool) {
	src := e.Begin(attrSource)
	appendSocketAddress(e, c.Remote.Addr().String(), uint32(c.Remote.Port()))
	e.String(peerPrincipal, "principal", c.Principal)
	e.End(src)
	dst := e.Begin(attrDestination)
	appendSocketAddress(e, c.Local.Addr().String(), uint32(c.Local.Port()))
	e.End(dst)
	if tlsSession && c.TLS {
		s := e.Begin(attrTLSSession)
		e.String(tlsSessionSNI, "sni", c.SNI)
		e.End(s)
	}
}

// appendSocketAddress writes Peer.address: an Address holding a
// SocketAddress (port_value is a oneof member, written even when 0).
func appendSocketAddress(e *pbwire.Enc, ip string, port uint32) {
	a := e.Begin(peerAddress)
	sa := e.Begin(addrSocket)
	e.String(socketAddress, "address", ip)
	e.VarintAlways(socketPortValue, uint64(port))
	e.End(sa)
	e.End(a)
}

// decodeCheckResponse turns a CheckResponse into an outcome: status OK is
// allowed (with ok_response's mutations), anything else denied (with
// denied_response's status, default 403, headers and body). Headers with
// invalid names or values are dropped.
func decodeCheckResponse(resp *pbwire.Msg) outcome {
	out := outcome{meta: flatMeta(resp.Sub(respDynamicMetadata))}
	if resp.Sub(respStatus).I32(statusCode) != 0 {
		d := resp.Sub(respDenied)
		out.kind, out.status, out.body = kindDenied, 403, d.Str(dnBody)
		if s := int(d.Sub(dnStatus).I32(statusCode)); s >= 200 && s <= 599 {
			out.status = s
		}
		for _, o := range d.Subs(dnHeaders) {
			if m, ok := headerOption(o); ok {
				out.client.Add(m.name, m.value)
			}
		}
		return out
	}
	ok := resp.Sub(respOK)
	for _, o := range ok.Subs(okHeaders) {
		if m, ok := headerOption(o); ok {
			out.mut = append(out.mut, m)
		}
	}
	out.remove = append(out.remove, ok.Strs(okHeadersToRemove)...)
	for _, o := range ok.Subs(okResponseHeadersToAdd) {
		if m, ok := headerOption(o); ok {
			out.client.Add(m.name, m.value)
		}
	}
	for _, q := range ok.Subs(okQuerySet) {
		if k := q.Str(queryParamKey); k != "" {
			out.querySet = append(out.querySet, [2]string{k, q.Str(queryParamVal)})
		}
	}
	out.queryRemove = append(out.queryRemove, ok.Strs(okQueryRemove)...)
	out.meta = append(out.meta, flatMeta(ok.Sub(okDynamicMetadata))...)
	return out
}

// headerOption parses a HeaderValueOption as Envoy's ext_authz does: the
// deprecated append, when present, chooses append or overwrite; otherwise
// append_action (default APPEND_IF_EXISTS_OR_ADD). ok is false for invalid
// names or values and for Host.
func headerOption(o *pbwire.Msg) (m headerMut, ok bool) {
	h := o.Sub(hvoHeader)
	m.name = strings.ToLower(h.Str(headerValueKey))
	m.value = h.Str(hvValue)
	if raw := h.Bytes(headerValueRaw); m.value == "" && len(raw) > 0 {
		m.value = string(raw)
	}
	if !headers.ValidName(m.name) || !headers.ValidValue(m.value) || m.name == "host" {
		return m, false
	}
	if o.Has(hvoAppend) {
		m.mode = modeSet
		if o.Sub(hvoAppend).Bool(boolValueValue) {
			m.mode = modeAppend
		}
		return m, true
	}
	switch o.I32(hvoAppendAction) {
	case actionAddIfAbsent:
		m.mode = modeAddIfAbsent
	case actionOverwriteIfExistsOrAdd:
		m.mode = modeSet
	case actionOverwriteIfExists:
		m.mode = modeOverwriteIfExists
	default:
		m.mode = modeAppend
	}
	return m, true
}

// flatMeta keeps the string, number and bool fields of a dynamic metadata
// struct (Mast's dynamic metadata is flat), in wire order (a repeated key
// keeps its first place and its last value, as a map does).
func flatMeta(s *pbwire.Msg) [][2]string {
	var out [][2]string
	keys, vals := s.Map(structFields)
	for i, k := range keys {
		v := vals[i]
		switch {
		case v.Has(valueString):
			out = append(out, [2]string{k, v.Str(valueString)})
		case v.Has(valueBool):
			out = append(out, [2]string{k, boolString(v.Bool(valueBool))})
		case v.Has(valueNumber):
			// As JSON writes it (1.5, 2, 1e+21), the form Envoy's
			// formatters give a number; NaN and infinities have none.
			if b, err := json.Marshal(v.Double(valueNumber)); err == nil {
				out = append(out, [2]string{k, string(b)})
			}
		}
	}
	return out
}
