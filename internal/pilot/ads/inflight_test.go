package ads

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"

	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

func TestInflightAnswered(t *testing.T) {
	var f inflight
	f.add("a", 100)
	f.add("b", 200)
	f.add("c", 300)
	f.answered("zz") // not sent: nothing changes
	f.answered("")
	if f.bytes != 600 || len(f.sent) != 3 {
		t.Fatalf("after unknown nonces: %+v", f)
	}
	f.answered("b") // clears a and b
	if f.bytes != 300 || len(f.sent) != 1 || f.sent[0].nonce != "c" {
		t.Fatalf("after answering b: %+v, want only c", f)
	}
	f.answered("b") // again: nothing
	f.answered("c")
	if f.bytes != 0 || len(f.sent) != 0 || !f.direct() {
		t.Fatalf("after answering c: %+v", f)
	}
	for i := range maxInflight + 10 {
		f.add(strconv.Itoa(i), 10)
	}
	if len(f.sent) != maxInflight || f.bytes != 10*(maxInflight+10) {
		t.Fatalf("beyond maxInflight: %d records, %d bytes", len(f.sent), f.bytes)
	}
	f.answered("3") // merged into a later record: clears nothing
	if f.bytes != 10*(maxInflight+10) {
		t.Fatalf("answering a merged nonce cleared %d bytes", 10*(maxInflight+10)-f.bytes)
	}
	f.answered(strconv.Itoa(maxInflight + 9))
	if f.bytes != 0 || len(f.sent) != 0 {
		t.Fatalf("answering the last: %+v", f)
	}
	f.add("x", sendQuota-1)
	if !f.direct() {
		t.Fatal("not direct below the quota")
	}
	f.add("y", 1)
	if f.direct() {
		t.Fatal("direct at the quota")
	}
}

// TestWireBounds: the bounds deliver records are at least the bytes gRPC
// queues for a response (its encoding through the server's codec plus the
// 5-byte message header), for responses as respond builds them.
func TestWireBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 6))
	str := func(max int) string { return strings.Repeat("n", rng.IntN(max)) }
	c := Codec()
	size := func(m proto.Message) int {
		b, err := c.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b.Len() + grpcHeader
	}
	for i := range 2000 {
		sizes := []int{0, 1, 127, 128, 1023, 1024, 16383, 16384, 70000}
		if i%2 == 0 {
			m := &discoveryv3.DiscoveryResponse{VersionInfo: str(300), TypeUrl: str(200), Nonce: str(20), Canary: rng.IntN(2) == 0}
			for range rng.IntN(5) {
				m.Resources = append(m.Resources, codecAny(str(200), sizes[rng.IntN(len(sizes))]))
			}
			if got, want := sotwWireBound(&sotwResponse{msg: m}), size(m); got < want {
				t.Fatalf("sotw %d: bound %d < %d bytes", i, got, want)
			}
			continue
		}
		m := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: str(300), TypeUrl: str(200), Nonce: str(20)}
		for range rng.IntN(5) {
			m.Resources = append(m.Resources, &discoveryv3.Resource{Name: str(300), Version: str(20), Resource: codecAny(str(200), sizes[rng.IntN(len(sizes))])})
		}
		for range rng.IntN(4) {
			m.RemovedResources = append(m.RemovedResources, str(300))
		}
		if got, want := deltaWireBound(&deltaResponse{msg: m}), size(m); got < want {
			t.Fatalf("delta %d: bound %d < %d bytes", i, got, want)
		}
	}
}

// TestSendQuotaIsGRPCWriteQuota holds sendQuota to grpc-go: on a stream
// whose client grants no flow-control window (so the transport writes
// nothing and gives no quota back), Sends return while the bytes queued
// before them are below sendQuota, and the next one blocks. If grpc-go's
// quota shrinks, the loop could block in a Send it took for non-blocking:
// this test then fails.
func TestSendQuotaIsGRPCWriteQuota(t *testing.T) {
	msg := &wrapperspb.BytesValue{Value: bytes.Repeat([]byte{1}, 995)}
	unit := proto.Size(msg) + grpcHeader
	returning := (sendQuota + unit - 1) / unit // sends that start with fewer than sendQuota bytes queued
	sent := make(chan int, returning+1)
	desc := grpc.ServiceDesc{
		ServiceName: "quota.Test",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "Fill", ServerStreams: true, Handler: func(_ any, s grpc.ServerStream) error {
			if err := s.RecvMsg(&wrapperspb.BytesValue{}); err != nil {
				return err
			}
			for i := 1; ; i++ {
				if err := s.SendMsg(msg); err != nil {
					return err
				}
				sent <- i
			}
		}}},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(ServerOptions()...)
	g.RegisterService(&desc, struct{}{})
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn := zeroWindowStream(t, lis.Addr().String(), "/quota.Test/Fill")
	t.Cleanup(func() { conn.Close() })

	// A generous bound on a hang, not a timing: these Sends return at once.
	hang := time.After(30 * time.Second)
	for n := 1; n <= returning; n++ {
		select {
		case <-sent:
		case <-hang:
			t.Fatalf("Send %d blocked with %d bytes queued: grpc-go's write quota is below sendQuota (%d)", n, (n-1)*unit, sendQuota)
		}
	}
	// The next Send starts with at least sendQuota bytes queued: it must
	// block (if it returns, grpc-go's quota grew and sendQuota should too).
	select {
	case n := <-sent:
		t.Fatalf("Send %d returned with %d bytes queued: grpc-go's write quota is above sendQuota (%d)", n, (n-1)*unit, sendQuota)
	case <-time.After(300 * time.Millisecond):
	}
}

// zeroWindowStream opens a gRPC call on a raw HTTP/2 connection whose
// SETTINGS grant a stream window of 0, sends one empty request message, and
// reads (and discards) whatever the server sends without ever granting
// more window.
func zeroWindowStream(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "test"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}); err != nil { // one empty message
		t.Fatal(err)
	}
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					return
				}
			}
		}
	}()
	return c
}

// A client that stops reading cannot make the loop block in a Send by
// acknowledging responses it has not received: nonces it guesses (counted
// ones, say) clear nothing, the next response goes through the outbox, and
// Close still ends the stream.
func TestGuessedNoncesCannotBlockLoop(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	big := baseState()
	big.big = 512 << 10
	e.ads.Push(m.set("v1", big), nil)
	cc := e.dial(t, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	// No deadline on the stream: its end must come from Close.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stuck := &sotwClient{t: t, id: nodeID("stuck"), stream: stream, first: true}
	stuck.request(ClusterType) // and never Recv
	eventually(t, "v1 handed to gRPC", func() bool {
		p, ok := e.lookup(stuck.id)
		return ok && p.typ(ClusterType).VersionSent == "v1"
	})
	for i := range 100 {
		stuck.send(&discoveryv3.DiscoveryRequest{TypeUrl: ClusterType, VersionInfo: "v1", ResponseNonce: strconv.Itoa(i)})
	}
	// Handled after the guesses: its response must wait in the outbox.
	stuck.request(EndpointType, clA)
	eventually(t, "EDS response in flight", func() bool { return e.status(t, stuck.id).Sending == EndpointType })
	// Close ends the stream's handler (a loop blocked in Send would keep
	// it, and GracefulStop would wait for it).
	e.ads.Close()
	eventually(t, "stuck stream ended by Close", func() bool { _, ok := e.lookup(stuck.id); return !ok })
}

// While the bytes a client has not acknowledged stay below sendQuota, the
// loop sends every response itself; from then on, through the outbox.
func TestLoopSendsWhileAcknowledged(t *testing.T) {
	m := newTestMesh()
	s := New(Config{Generate: m.generate, ClusterHost: parseClusterHost, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.Push(m.set("v1", baseState()), nil)
	cs := &captureStream[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]{}
	c := s.newConn(nodeProxy(t), "delta")
	var direct, handoffs atomic.Int32
	out := &outbox[deltaResponse]{in: make(chan *deltaResponse),
		res: make(chan error, 1), stop: make(chan struct{}), hold: stoppedTimer()}
	// Bytes unanswered before the response being sent (deliver records
	// it first).
	before := func() int { return c.inflight.bytes - c.inflight.sent[len(c.inflight.sent)-1].bytes }
	out.sendNow = func(r *deltaResponse) error {
		if b := before(); b >= sendQuota {
			t.Errorf("sent on the loop with %d bytes unacknowledged", b)
		}
		direct.Add(1)
		return cs.Send(r.joined())
	}
	go func() {
		for {
			select {
			case r := <-out.in: // the loop waits for res: reading its state is safe
				if b := before(); b < sendQuota {
					t.Errorf("handed to the outbox with only %d bytes unacknowledged", b)
				}
				handoffs.Add(1)
				out.res <- cs.Send(r.joined())
			case <-out.stop:
				return
			}
		}
	}()
	defer out.close()
	st := &deltaStream{c: c, stream: cs, out: out}
	handle := func(r *discoveryv3.DeltaDiscoveryRequest) {
		t.Helper()
		if err := st.handle(r); err != nil {
			t.Fatal(err)
		}
	}
	ackAll := func() {
		t.Helper()
		for _, r := range cs.sent {
			handle(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce})
		}
		cs.sent = cs.sent[:0]
	}
	push := func(i int) {
		t.Helper()
		ms := baseState()
		ms.big = 10<<10 + i // three clusters: 30 KB, new each time
		ms.endpoints[hostA] = fmt.Sprintf("10.2.0.%d", i)
		s.Push(m.set(fmt.Sprintf("v%d", i+2), ms), nil)
		if err := st.push(&model.PushRequest{Full: true}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	handle(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType})
	handle(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: []string{clA, clB}})
	ackAll()
	for i := range 20 {
		push(i)
		if len(cs.sent) != 2 {
			t.Fatalf("push %d sent %d responses, want CDS and EDS", i, len(cs.sent))
		}
		ackAll()
	}
	if n := handoffs.Load(); n != 0 || direct.Load() != 42 {
		t.Fatalf("%d responses sent on the loop, %d through the outbox, while the client acknowledged everything; want 42, 0", direct.Load(), n)
	}
	for i := 20; handoffs.Load() < 2; i++ { // no more ACKs
		if i == 40 {
			t.Fatalf("%d hand-offs after 20 pushes unacknowledged", handoffs.Load())
		}
		push(i)
	}
}
