package extauthz

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

// The reference: the Check messages as the filter built and read them
// with go-control-plane's generated types before checkwire.go.

func checkRequestGenerated(f *Filter, r *filter.Request, body []byte, partial bool, now time.Time) *authv3.CheckRequest {
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
		Request: &authv3.AttributeContext_Request{Time: timestamppb.New(now), Http: hr},
	}
	if r.Conn != nil {
		connAttributesGenerated(attrs, r.Conn, f.cfg.IncludeTLSSession)
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func connAttributesGenerated(attrs *authv3.AttributeContext, c *filter.Conn, tlsSession bool) {
	attrs.Source = &authv3.AttributeContext_Peer{Address: socketAddressGenerated(c.Remote.Addr().String(), uint32(c.Remote.Port())), Principal: c.Principal}
	attrs.Destination = &authv3.AttributeContext_Peer{Address: socketAddressGenerated(c.Local.Addr().String(), uint32(c.Local.Port()))}
	if tlsSession && c.TLS {
		attrs.TlsSession = &authv3.AttributeContext_TLSSession{Sni: c.SNI}
	}
}

func socketAddressGenerated(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func decodeCheckResponseGenerated(resp *authv3.CheckResponse) outcome {
	out := outcome{meta: flatMetaGenerated(resp.GetDynamicMetadata())}
	if resp.GetStatus().GetCode() != int32(code.Code_OK) {
		d := resp.GetDeniedResponse()
		out.kind, out.status, out.body = kindDenied, 403, d.GetBody()
		if s := int(d.GetStatus().GetCode()); s >= 200 && s <= 599 {
			out.status = s
		}
		for _, o := range d.GetHeaders() {
			if m, ok := headerOptionGenerated(o); ok {
				out.client.Add(m.name, m.value)
			}
		}
		return out
	}
	ok := resp.GetOkResponse()
	for _, o := range ok.GetHeaders() {
		if m, ok := headerOptionGenerated(o); ok {
			out.mut = append(out.mut, m)
		}
	}
	out.remove = append(out.remove, ok.GetHeadersToRemove()...)
	for _, o := range ok.GetResponseHeadersToAdd() {
		if m, ok := headerOptionGenerated(o); ok {
			out.client.Add(m.name, m.value)
		}
	}
	for _, q := range ok.GetQueryParametersToSet() {
		if q.GetKey() != "" {
			out.querySet = append(out.querySet, [2]string{q.GetKey(), q.GetValue()})
		}
	}
	out.queryRemove = append(out.queryRemove, ok.GetQueryParametersToRemove()...)
	out.meta = append(out.meta, flatMetaGenerated(ok.GetDynamicMetadata())...)
	return out
}

func headerOptionGenerated(o *corev3.HeaderValueOption) (m headerMut, ok bool) {
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

func flatMetaGenerated(s *structpb.Struct) [][2]string {
	var out [][2]string
	for k, v := range s.GetFields() {
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			out = append(out, [2]string{k, x.StringValue})
		case *structpb.Value_BoolValue:
			out = append(out, [2]string{k, boolString(x.BoolValue)})
		case *structpb.Value_NumberValue:
			if b, err := json.Marshal(x.NumberValue); err == nil {
				out = append(out, [2]string{k, string(b)})
			}
		}
	}
	return out
}

// TestAppendActions: the action numbers checkwire.go reads are the enum's.
func TestAppendActions(t *testing.T) {
	if actionAddIfAbsent != corev3.HeaderValueOption_ADD_IF_ABSENT ||
		actionOverwriteIfExistsOrAdd != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD ||
		actionOverwriteIfExists != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS {
		t.Fatal("HeaderAppendAction numbers differ from the generated enum")
	}
}

// randomRequest returns a request (and the filter config it is checked
// under) with random method, path, headers (repeated ones, invalid UTF-8
// ones, x-request-id and content-length sometimes), connection and body.
func randomRequest(r *rand.Rand) (*Filter, *filter.Request, []byte, bool) {
	strs := []string{"", "a", "GET", "/p?q=1", "host.example:80", "é", "x,y", strings.Repeat("z", 300)}
	pick := func() string { return strs[r.IntN(len(strs))] }
	names := []string{"x-a", "x-b", "x-request-id", "content-length", "authorization", "x-envoy-auth-partial-body", "cookie"}
	cfg := &Config{EncodeRawHeaders: r.IntN(2) == 0, IncludeTLSSession: r.IntN(2) == 0}
	if r.IntN(3) == 0 {
		cfg.AllowedHeaders = matchList{match.String{Kind: match.StrExact, Value: names[r.IntN(len(names))]}, match.String{Kind: match.StrExact, Value: ":path"}}
	}
	if r.IntN(2) == 0 {
		cfg.Body = &BodySettings{PackAsBytes: r.IntN(2) == 0}
	}
	f := &Filter{cfg: cfg}
	hl := headers.List{}
	for range r.IntN(6) {
		v := pick()
		if r.IntN(6) == 0 {
			v = "v\xff" // sent as !, or raw in header_map
		}
		if r.IntN(8) == 0 {
			v = []string{"12", "-1", "x"}[r.IntN(3)]
		}
		hl = append(hl, headers.Field{Name: names[r.IntN(len(names))], Value: v})
	}
	req := &filter.Request{Method: pick(), Path: pick(), Authority: pick(), Scheme: pick(), HTTP2: r.IntN(2) == 0, Headers: &hl}
	if r.IntN(8) == 0 { // invalid UTF-8 where the generated Marshal refuses it
		req.Path = "/\xc3"
	}
	if r.IntN(4) != 0 {
		req.Conn = randomConn(r, pick)
	}
	var body []byte
	if cfg.Body != nil && r.IntN(4) != 0 {
		body = []byte(pick())
	}
	return f, req, body, r.IntN(2) == 0
}

func randomConn(r *rand.Rand, pick func() string) *filter.Conn {
	addrs := []string{"127.0.0.7", "10.1.2.3", "::1", "fe80::1"}
	return &filter.Conn{
		Remote:    netip.AddrPortFrom(netip.MustParseAddr(addrs[r.IntN(len(addrs))]), uint16(r.IntN(3)*40000)),
		Local:     netip.AddrPortFrom(netip.MustParseAddr(addrs[r.IntN(len(addrs))]), uint16(r.IntN(65536))),
		Principal: []string{"", "spiffe://cluster.local/ns/foo/sa/sleep"}[r.IntN(2)],
		TLS:       r.IntN(2) == 0, SNI: pick(),
	}
}

// TestCheckRequestMatchesGenerated: for random requests, the CheckRequest
// checkRequest writes decodes (with the generated type) to the message the
// generated types built, and the encoding fails exactly when proto.Marshal
// refused the generated message (a string that is not UTF-8). The same for
// the network filter's request.
func TestCheckRequestMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	now := time.Unix(1765000000, 123456789)
	failed := 0
	for i := range 3000 {
		f, req, body, partial := randomRequest(r)
		want := checkRequestGenerated(f, req, body, partial, now)
		b, err := f.checkRequest(req, body, partial, now)
		compareRequest(t, i, want, b, err)
		if err != nil {
			failed++
		}
		if req.Conn != nil {
			want := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}
			connAttributesGenerated(want.Attributes, req.Conn, f.cfg.IncludeTLSSession)
			b, err := networkCheckRequest(req.Conn, f.cfg.IncludeTLSSession)
			compareRequest(t, i, want, b, err)
		}
	}
	if failed == 0 || failed > 1000 {
		t.Errorf("%d of 3000 encodings failed: the generator misses a case", failed)
	}
}

func compareRequest(t *testing.T, i int, want *authv3.CheckRequest, b []byte, err error) {
	t.Helper()
	if _, merr := proto.Marshal(want); (merr != nil) != (err != nil) {
		t.Fatalf("#%d: proto.Marshal error %v, checkRequest error %v", i, merr, err)
	}
	if err != nil {
		return
	}
	var have authv3.CheckRequest
	if err := proto.Unmarshal(b, &have); err != nil {
		t.Fatalf("#%d: %x does not decode: %v", i, b, err)
	}
	if !proto.Equal(&have, want) {
		t.Fatalf("#%d: encoded\n%v\nwant\n%v", i, &have, want)
	}
}

// sortedMeta orders an outcome's metadata (the generated reference read a
// Go map, in random order).
func sortedMeta(o outcome) outcome {
	o.meta = slices.Clone(o.meta)
	slices.SortFunc(o.meta, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	return o
}

// compareResponse decodes b both ways: both fail, or both give the same
// outcome (HTTP filter) and the same verdict and metadata (network filter).
func compareResponse(t testing.TB, b []byte) {
	t.Helper()
	var want authv3.CheckResponse
	uerr := proto.Unmarshal(b, &want)
	m, err := pbwire.Decode(wireTable, wireCheckResponse, b)
	if (uerr != nil) != (err != nil) {
		t.Fatalf("%x: proto.Unmarshal %v, pbwire %v", b, uerr, err)
	}
	if err != nil {
		return
	}
	wo, ho := sortedMeta(decodeCheckResponseGenerated(&want)), sortedMeta(decodeCheckResponse(m))
	if !reflect.DeepEqual(wo, ho) {
		t.Fatalf("%x:\ngenerated %+v\nwire      %+v", b, wo, ho)
	}
	wn := fmt.Sprint(want.GetStatus().GetCode() != 0, sortedMeta(outcome{meta: flatMetaGenerated(want.GetDynamicMetadata())}).meta)
	hn := fmt.Sprint(m.Sub(respStatus).I32(statusCode) != 0, sortedMeta(outcome{meta: flatMeta(m.Sub(respDynamicMetadata))}).meta)
	if wn != hn {
		t.Fatalf("%x: network verdict generated %s, wire %s", b, wn, hn)
	}
}

// responseFiller makes random CheckResponses; headers are drawn from
// valid and invalid names and values, statuses from OK and others.
func responseFiller(seed uint64) *pbwiregen.Filler {
	return &pbwiregen.Filler{R: rand.New(rand.NewPCG(seed, seed+1)), P: 0.5, OneofP: 0.9, MaxDepth: 6,
		Strings: []string{"x-a", "X-B", "host", ":path", "v", "a b", "bad\nvalue", "1.5", "true", "k", "k2", "q"}}
}

// TestCheckResponseMatchesGenerated: random CheckResponses, some of them
// concatenated (which merge) or cut short or with a byte flipped, decode
// to the same outcome or fail both ways.
func TestCheckResponseMatchesGenerated(t *testing.T) {
	fl := responseFiller(11)
	r := rand.New(rand.NewPCG(3, 4))
	kinds := map[int]int{}
	for i := range 4000 {
		m := &authv3.CheckResponse{}
		fl.Fill(m.ProtoReflect())
		if i%2 == 0 {
			m.Status = nil // OK: exercises ok_response
			if i%4 == 0 {
				m.Status = &status.Status{}
			}
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 10 {
		case 7:
			m2 := &authv3.CheckResponse{}
			fl.Fill(m2.ProtoReflect())
			b2, _ := proto.Marshal(m2)
			b = append(b, b2...)
		case 8:
			if len(b) > 0 {
				b = b[:r.IntN(len(b))]
			}
		case 9:
			if len(b) > 0 {
				b = slices.Clone(b)
				b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
			}
		}
		compareResponse(t, b)
		if m, err := pbwire.Decode(wireTable, wireCheckResponse, b); err == nil {
			kinds[decodeCheckResponse(m).kind]++
		}
	}
	if kinds[kindOK] < 500 || kinds[kindDenied] < 300 {
		t.Errorf("outcomes %v: the generator does not reach both", kinds)
	}
}

// FuzzDecodeCheckResponse: any bytes decode as the generated type decodes
// them; the outcome never carries invalid headers and allows only with
// status OK.
func FuzzDecodeCheckResponse(f *testing.F) {
	srv := &authzServer{}
	for _, allow := range []string{"allow", "deny"} {
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{"x-ext-authz": allow}}}}}
		resp, _ := srv.Check(nil, req)
		b, _ := proto.Marshal(resp)
		f.Add(b)
	}
	fl := responseFiller(21)
	for range 20 {
		m := &authv3.CheckResponse{}
		fl.Fill(m.ProtoReflect())
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareResponse(t, data)
		m, err := pbwire.Decode(wireTable, wireCheckResponse, data)
		if err != nil {
			return
		}
		out := decodeCheckResponse(m)
		if out.kind == kindOK && m.Sub(respStatus).I32(statusCode) != 0 {
			t.Fatal("allowed with a non-OK status")
		}
		if out.kind == kindDenied && (out.status < 200 || out.status > 599) {
			t.Fatalf("denied with status %d", out.status)
		}
		for _, x := range out.client {
			if !headers.ValidName(x.Name) || !headers.ValidValue(x.Value) {
				t.Fatalf("invalid client header %q: %q", x.Name, x.Value)
			}
		}
		for _, m := range out.mut {
			if !headers.ValidName(m.name) || !headers.ValidValue(m.value) || m.name == "host" {
				t.Fatalf("invalid upstream header %q: %q", m.name, m.value)
			}
		}
	})
}

// structMsg decodes a generated Struct with the package's table.
func structMsg(t testing.TB, s *structpb.Struct) *pbwire.Msg {
	b, err := proto.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pbwire.Decode(wireTable, wireTable.Index(string((&structpb.Struct{}).ProtoReflect().Descriptor().FullName())), b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mdServer records the metadata of the checks it answers (OK).
type mdServer struct {
	authv3.UnimplementedAuthorizationServer
	md chan metadata.MD
}

func (s *mdServer) Check(ctx context.Context, _ *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.md <- md
	return &authv3.CheckResponse{}, nil
}

// TestInitialMetadataSent: the gRPC service's initial_metadata goes with
// every check, names in lower case, and the authority is the service's.
func TestInitialMetadataSent(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv := &mdServer{md: make(chan metadata.MD, 1)}
	authv3.RegisterAuthorizationServer(g, srv)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	c := grpcConfig()
	c.GetGrpcService().InitialMetadata = []*corev3.HeaderValue{{Key: "X-Tenant", Value: "t1"}, {Key: "x-trace-bin", Value: "\x00\x01"}}
	f := mustNew(t, c)
	r := request(services(lis.Addr().String()), true, "x-ext-authz", "allow")
	if st := f.DecodeHeaders(context.Background(), r); st != filter.Continue {
		t.Fatalf("allowed request stopped: %+v", r.Reply)
	}
	md := <-srv.md
	if v := md.Get("x-tenant"); len(v) != 1 || v[0] != "t1" {
		t.Errorf("x-tenant = %q", v)
	}
	if v := md.Get("x-trace-bin"); len(v) != 1 || v[0] != "\x00\x01" {
		t.Errorf("x-trace-bin = %q", v)
	}
	if v := md.Get(":authority"); len(v) != 1 || v[0] != "outbound_.9000_._.ext-authz.foo.svc.cluster.local" {
		t.Errorf(":authority = %q", v)
	}
}
