package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// grpcBackend is a gRPC TestService: unary echo (or the status the request
// asks for), server streaming of the asked sizes followed by a non-OK status,
// and a bidirectional echo.
type grpcBackend struct {
	testgrpc.UnimplementedTestServiceServer
	duplex atomic.Int64 // FullDuplexCall streams started
}

func (b *grpcBackend) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "from-backend"))
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return &testgrpc.SimpleResponse{Payload: req.GetPayload(), Hostname: "backend"}, nil
}

func (b *grpcBackend) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	for i, p := range req.GetResponseParameters() {
		body := bytes.Repeat([]byte{byte('a' + i%26)}, int(p.GetSize()))
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: body}}); err != nil {
			return err
		}
	}
	stream.SetTrailer(metadata.Pairs("x-sent", fmt.Sprint(len(req.GetResponseParameters()))))
	return status.Error(codes.ResourceExhausted, "done after the stream: ünïcode % message")
}

func (b *grpcBackend) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	b.duplex.Add(1)
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

func startGRPCBackend(t *testing.T) (*grpcBackend, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &grpcBackend{}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, b)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return b, ln.Addr().String()
}

// streamWorld is a proxy in front of a gRPC backend (HTTP/2 upstream) and
// a WebSocket backend, on one listener.
type streamWorld struct {
	xds      *xdstest.Server
	proxy    *proc
	addr     string
	grpcAddr string
	grpc     *grpcBackend
	ws       *backend
	version  int
}

func newStreamWorld(t *testing.T) *streamWorld {
	w := &streamWorld{addr: freeAddr(t), ws: startWSBackend(t)}
	w.grpc, w.grpcAddr = startGRPCBackend(t)
	w.xds = xdstest.Start(t, "127.0.0.1:0", nil)
	w.push(t, 0)
	w.proxy = startProxy(t, w.xds.Addr, gwNode)
	w.proxy.waitReady(t)
	waitListening(t, w.addr)
	return w
}

// resources is the configuration of push n: n changes an unrelated cluster
// (its endpoint) and an unrelated route, nothing the streams use.
func (w *streamWorld) resources(n int) map[string][]types.Resource {
	hcm := xdstest.HCM("streams")
	hcm.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	noTimeout := func(r *routev3.Route) { r.GetRoute().Timeout = durationpb.New(0) } // as Istio's routes
	grpcCluster := xdstest.StaticCluster("grpc", w.grpcAddr)
	grpcCluster.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	return xdstest.Resources(
		xdstest.ListenerWith("streams", w.addr, hcm),
		xdstest.RouteConfig("streams", []string{"*"},
			route(fmt.Sprintf("/unrelated/%d", n), "other"),
			route("/grpc.testing.TestService/", "grpc", noTimeout),
			route("/ws", "ws", noTimeout)),
		grpcCluster,
		xdstest.StaticCluster("ws", w.ws.addr),
		xdstest.StaticCluster("other", fmt.Sprintf("127.0.0.1:%d", 20000+n)),
	)
}

// push publishes configuration n and waits until the proxy acknowledged
// its clusters and routes.
func (w *streamWorld) push(t *testing.T, n int) {
	t.Helper()
	w.version++
	v := fmt.Sprint(w.version)
	w.xds.Set(t, gwNode, v, w.resources(n))
	if w.proxy == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, typ := range []string{"type.googleapis.com/envoy.config.cluster.v3.Cluster", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"} {
		if w.xds.WaitRequest(ctx, func(r *discoveryv3.DiscoveryRequest) bool {
			return r.GetTypeUrl() == typ && r.GetVersionInfo() == v && r.GetErrorDetail() == nil
		}) == nil {
			t.Fatalf("push %s: no ACK of %s", v, typ)
		}
	}
}

func (w *streamWorld) dial(t *testing.T) testgrpc.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(w.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

func TestGRPCThroughProxy(t *testing.T) {
	w := newStreamWorld(t)
	c := w.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}})
		if err != nil || string(resp.GetPayload().GetBody()) != "ping" || resp.GetHostname() != "backend" {
			t.Fatalf("got %v %v", resp, err)
		}
	})
	t.Run("status and trailers", func(t *testing.T) {
		for _, tc := range []struct {
			code codes.Code
			msg  string
		}{
			{codes.NotFound, "no such thing"},
			{codes.Unavailable, "percent % and ünïcode"},
			{codes.PermissionDenied, ""},
		} {
			var tr metadata.MD
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(tc.code), Message: tc.msg}}, grpc.Trailer(&tr))
			st, _ := status.FromError(err)
			if st.Code() != tc.code || st.Message() != tc.msg {
				t.Errorf("status %v %q, want %v %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
			if got := tr.Get("x-trailer"); len(got) != 1 || got[0] != "from-backend" {
				t.Errorf("trailer x-trailer = %v", got)
			}
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		var params []*testgrpc.ResponseParameters
		total := 0
		for i := range 200 {
			size := 1 + (i*7919)%40000
			total += size
			params = append(params, &testgrpc.ResponseParameters{Size: int32(size)})
		}
		s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		got, n := 0, 0
		for {
			m, err := s.Recv()
			if err != nil {
				st, _ := status.FromError(err)
				if st.Code() != codes.ResourceExhausted || st.Message() != "done after the stream: ünïcode % message" {
					t.Fatalf("final status %v", err)
				}
				break
			}
			if len(m.GetPayload().GetBody()) != int(params[n].GetSize()) || m.GetPayload().GetBody()[0] != byte('a'+n%26) {
				t.Fatalf("message %d: %d bytes, want %d", n, len(m.GetPayload().GetBody()), params[n].GetSize())
			}
			got += len(m.GetPayload().GetBody())
			n++
		}
		if n != len(params) || got != total {
			t.Fatalf("received %d messages, %d bytes; want %d, %d", n, got, len(params), total)
		}
		if v := s.Trailer().Get("x-sent"); len(v) != 1 || v[0] != "200" {
			t.Errorf("trailer x-sent = %v", v)
		}
	})
	t.Run("bidirectional ping-pong", func(t *testing.T) {
		// Each message is answered before the next is sent: this only works
		// if the proxy streams the request body as it comes.
		s, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			pingPong(t, s, fmt.Sprintf("msg-%d", i))
		}
		s.CloseSend()
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("end of stream: %v, want io.EOF (status OK)", err)
		}
	})
}

func pingPong(t *testing.T, s testgrpc.TestService_FullDuplexCallClient, msg string) {
	t.Helper()
	if err := s.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
		t.Fatalf("send %s: %v", msg, err)
	}
	m, err := s.Recv()
	if err != nil || string(m.GetPayload().GetBody()) != msg {
		t.Fatalf("recv for %s: %q %v", msg, m.GetPayload().GetBody(), err)
	}
}

// TestStreamsSurviveConfigPushes is the test: a gRPC stream and a
// WebSocket connection stay open while the control plane (go-control-plane's
// snapshot cache) pushes 50 configurations that change an unrelated cluster
// and route; after each acknowledged push both still carry messages, none is
// lost, and the upstream connection is the one they started on.
func TestStreamsSurviveConfigPushes(t *testing.T) {
	w := newStreamWorld(t)
	c := w.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	s, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pingPong(t, s, "before")
	ws, err := wsDial(w.addr, "/ws/pushes")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	wsPingPong(t, ws, "before")

	const pushes = 50
	for i := 1; i <= pushes; i++ {
		w.push(t, i)
		pingPong(t, s, fmt.Sprintf("after push %d", i))
		wsPingPong(t, ws, fmt.Sprintf("after push %d", i))
	}
	// The last push is in force: the unrelated route moved.
	if resp, _ := get(t, noRedirectClient(), fmt.Sprintf("http://%s/unrelated/%d", w.addr, pushes)); resp.StatusCode != 503 {
		t.Errorf("route of the last push: status %d, want 503 (its cluster has no server)", resp.StatusCode)
	}
	s.CloseSend()
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF (status OK)", err)
	}
	if n := w.grpc.duplex.Load(); n != 1 {
		t.Errorf("backend saw %d streams, want the 1 that lived through the pushes", n)
	}
	_, stats := w.proxy.adminGet(t, "/stats")
	if !strings.Contains(stats, "cluster.grpc.upstream_cx_total: 1\n") {
		t.Errorf("the gRPC cluster's pool did not survive the pushes (want upstream_cx_total 1):\n%s", grepLines(stats, "cluster.grpc."))
	}
	if !strings.Contains(stats, "cluster.ws.upstream_cx_total: 1\n") {
		t.Errorf("want one WebSocket upstream connection:\n%s", grepLines(stats, "cluster.ws."))
	}
}

func wsPingPong(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := websocket.Message.Send(c, msg); err != nil {
		t.Fatalf("websocket send %q: %v", msg, err)
	}
	var got string
	if err := websocket.Message.Receive(c, &got); err != nil || got != "echo:"+msg {
		t.Fatalf("websocket receive for %q: %q %v", msg, got, errors.Join(err))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func noRedirectClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
