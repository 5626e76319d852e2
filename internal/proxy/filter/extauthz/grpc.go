package extauthz

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"runtime"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// cleanupWith closes the connection once owner (a *Filter or *Network) is
// unreachable (the listener configuration that built it was replaced).
func cleanupWith[T any](g *grpcConn, owner *T) {
	runtime.AddCleanup(owner, func(g *grpcConn) { g.close() }, g)
}

func (g *grpcConn) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.done = true
	if g.conn != nil {
		g.conn.Close()
	}
}

// get returns the client connection, made on first use: HTTP/2 over a
// connection ClusterDial opens to a host of the cluster (the cluster's TLS
// included), so load balancing and mTLS follow the cluster's CDS/EDS.
func (g *grpcConn) get(svc *filter.Services) (*grpc.ClientConn, error) {
	g.once.Do(func() {
		if svc == nil || svc.ClusterDial == nil {
			g.err = errors.New("no cluster manager to reach " + g.svc.Cluster)
			return
		}
		dial, cluster := svc.ClusterDial, g.svc.Cluster
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.done {
			g.err = errors.New("filter closed")
			return
		}
		g.conn, g.err = grpc.NewClient("passthrough:///"+g.svc.Authority,
			grpc.WithTransportCredentials(insecure.NewCredentials()), // the dialer's connection carries the cluster's TLS
			grpc.WithAuthority(g.svc.Authority),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx, cluster) }))
	})
	return g.conn, g.err
}

// checkGRPC calls envoy.service.auth.v3.Authorization/Check.
func (f *Filter) checkGRPC(ctx context.Context, r *filter.Request, body []byte, partial bool) (outcome, error) {
	conn, err := f.grpc.get(r.Services)
	if err != nil {
		return outcome{}, err
	}
	resp, err := authv3.NewAuthorizationClient(conn).Check(outgoing(ctx, f.cfg.GRPC), f.checkRequest(r, body, partial))
	if err != nil {
		return outcome{}, err
	}
	return decodeCheckResponse(resp), nil
}

// checkRequest builds the CheckRequest's attributes as Envoy does.
func (f *Filter) checkRequest(r *filter.Request, body []byte, partial bool) *authv3.CheckRequest {
	h := f.checkHeaders(r, false)
	if body != nil {
		h = append(h, headers.Field{Name: hdrPartialBody, Value: boolString(partial)})
	}
	hr := &authv3.AttributeContext_HttpRequest{
		Method: r.Method, Path: r.Path, Host: r.Authority, Scheme: r.Scheme,
		Protocol: "HTTP/1.1", Size: contentLength(r),
	}
	if r.HTTP2 {
		hr.Protocol = "HTTP/2"
	}
	hr.Id, _ = r.Headers.Get("x-request-id")
	if f.cfg.EncodeRawHeaders {
		hm := &corev3.HeaderMap{}
		for _, x := range h {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: x.Name, RawValue: []byte(x.Value)})
		}
		hr.HeaderMap = hm
	} else {
		hr.Headers = make(map[string]string, len(h))
		for _, x := range h {
			hr.Headers[x.Name] = strings.ToValidUTF8(x.Value, "!")
		}
	}
	if body != nil {
		if f.cfg.Body.PackAsBytes {
			hr.RawBody = body
		} else {
			hr.Body = strings.ToValidUTF8(string(body), "\uFFFD")
		}
	}
	attrs := &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Time: timestamppb.New(time.Now()), Http: hr},
	}
	if r.Conn != nil {
		connAttributes(attrs, r.Conn, f.cfg.IncludeTLSSession)
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

// connAttributes sets the connection's peers as Envoy does: the source's
// address and the principal of its verified certificate, the destination's
// address, and with tlsSession the SNI of a TLS connection.
func connAttributes(attrs *authv3.AttributeContext, c *filter.Conn, tlsSession bool) {
	attrs.Source = &authv3.AttributeContext_Peer{Address: socketAddress(c.Remote.Addr().String(), uint32(c.Remote.Port())), Principal: c.Principal}
	attrs.Destination = &authv3.AttributeContext_Peer{Address: socketAddress(c.Local.Addr().String(), uint32(c.Local.Port()))}
	if tlsSession && c.TLS {
		attrs.TlsSession = &authv3.AttributeContext_TLSSession{Sni: c.SNI}
	}
}

// outgoing adds the service's initial_metadata to a call's context.
func outgoing(ctx context.Context, s *GRPCService) context.Context {
	if len(s.Metadata) == 0 {
		return ctx
	}
	kv := make([]string, 0, 2*len(s.Metadata))
	for _, m := range s.Metadata {
		kv = append(kv, m[0], m[1])
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// decodeCheckResponse turns a CheckResponse into an outcome: status OK is
// allowed (with ok_response's mutations), anything else denied (with
// denied_response's status, default 403, headers and body). Headers with
// invalid names or values are dropped.
func decodeCheckResponse(resp *authv3.CheckResponse) outcome {
	out := outcome{meta: flatMeta(resp.GetDynamicMetadata())}
	if resp.GetStatus().GetCode() != int32(code.Code_OK) {
		d := resp.GetDeniedResponse()
		out.kind, out.status, out.body = kindDenied, 403, d.GetBody()
		if s := int(d.GetStatus().GetCode()); s >= 200 && s <= 599 {
			out.status = s
		}
		for _, o := range d.GetHeaders() {
			if m, ok := headerOption(o); ok {
				out.client.Add(m.name, m.value)
			}
		}
		return out
	}
	ok := resp.GetOkResponse()
	for _, o := range ok.GetHeaders() {
		if m, ok := headerOption(o); ok {
			out.mut = append(out.mut, m)
		}
	}
	out.remove = append(out.remove, ok.GetHeadersToRemove()...)
	for _, o := range ok.GetResponseHeadersToAdd() {
		if m, ok := headerOption(o); ok {
			out.client.Add(m.name, m.value)
		}
	}
	for _, q := range ok.GetQueryParametersToSet() {
		if q.GetKey() != "" {
			out.querySet = append(out.querySet, [2]string{q.GetKey(), q.GetValue()})
		}
	}
	out.queryRemove = append(out.queryRemove, ok.GetQueryParametersToRemove()...)
	out.meta = append(out.meta, flatMeta(ok.GetDynamicMetadata())...)
	return out
}

// headerOption parses a HeaderValueOption as Envoy's ext_authz does: the
// deprecated append, when present, chooses append or overwrite; otherwise
// append_action (default APPEND_IF_EXISTS_OR_ADD). ok is false for invalid
// names or values and for Host.
func headerOption(o *corev3.HeaderValueOption) (m headerMut, ok bool) {
	m.name = strings.ToLower(o.GetHeader().GetKey())
	m.value = o.GetHeader().GetValue()
	if m.value == "" && len(o.GetHeader().GetRawValue()) > 0 {
		m.value = string(o.GetHeader().GetRawValue())
	}
	if !headers.ValidName(m.name) || !headers.ValidValue(m.value) || m.name == "host" {
		return m, false
	}
	if a := o.GetAppend(); a != nil {
		m.mode = modeSet
		if a.GetValue() {
			m.mode = modeAppend
		}
		return m, true
	}
	switch o.GetAppendAction() {
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		m.mode = modeAddIfAbsent
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		m.mode = modeSet
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		m.mode = modeOverwriteIfExists
	default:
		m.mode = modeAppend
	}
	return m, true
}

// flatMeta keeps the string, number and bool fields of a dynamic metadata
// struct (Mast's dynamic metadata is flat).
func flatMeta(s *structpb.Struct) [][2]string {
	var out [][2]string
	for k, v := range s.GetFields() {
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			out = append(out, [2]string{k, x.StringValue})
		case *structpb.Value_BoolValue:
			out = append(out, [2]string{k, boolString(x.BoolValue)})
		case *structpb.Value_NumberValue:
			// As JSON writes it (1.5, 2, 1e+21), the form Envoy's
			// formatters give a number; NaN and infinities have none.
			if b, err := json.Marshal(x.NumberValue); err == nil {
				out = append(out, [2]string{k, string(b)})
			}
		}
	}
	return out
}
