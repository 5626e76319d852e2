package ads

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// captureStream is an in-memory server stream: the fuzz target drives the
// request handlers directly and inspects what they send.
type captureStream[Req, Resp any] struct {
	grpc.ServerStream
	sent []*Resp
}

func (s *captureStream[Req, Resp]) Context() context.Context { return context.Background() }
func (s *captureStream[Req, Resp]) Send(m *Resp) error       { s.sent = append(s.sent, m); return nil }
func (s *captureStream[Req, Resp]) Recv() (*Req, error)      { return nil, io.EOF }

// sendSotw is a SotW stream's send to cs: the response as a client reads
// it, pieced values joined.
func sendSotw(cs *captureStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) func(*sotwResponse) error {
	return func(r *sotwResponse) error { return cs.Send(r.joined()) }
}

// sendDelta is sendSotw for a Delta stream.
func sendDelta(cs *captureStream[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) func(*deltaResponse) error {
	return func(r *deltaResponse) error { return cs.Send(r.joined()) }
}

// FuzzDeltaRequests feeds arbitrary sequences of delta requests, as a
// misbehaving proxy could send them, and checks the protocol invariants: no
// panic, nothing sent that is not subscribed, removals only of names the
// client was told about or asked for, and the server's record of the
// client's resources matching what it sent.
func FuzzDeltaRequests(f *testing.F) {
	f.Add([]byte{0x00, 0x11, 0x22, 0x83, 0x04})
	f.Add([]byte{0x10, 0x31, 0x52, 0x93, 0xe4, 0x25, 0x46})
	f.Add([]byte{0x03, 0x0b, 0x13, 0xf3, 0x07, 0x1f})
	m := newTestMesh()
	m.noRecord = true
	pcs := []string{"v1", "v2"}
	states := []*meshState{baseState(), baseState()}
	delete(states[1].endpoints, hostC)
	states[1].listeners = nil
	for i, v := range pcs {
		m.set(v, states[i])
	}
	names := []string{"*", clA, clB, clC, "0.0.0.0_80", "80", "nope"}
	types := []string{ClusterType, EndpointType, ListenerType, RouteType}
	f.Fuzz(func(t *testing.T, ops []byte) {
		s := New(Config{Generate: m.generate, ClusterHost: parseClusterHost, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		s.Push(m.set("v1", states[0]), nil)
		cs := &captureStream[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]{}
		c := s.newConn(nodeProxy(t), "delta")
		st := &deltaStream{c: c, stream: cs, out: startOutbox(sendDelta(cs), 0)}
		defer st.out.close()
		subscribed := map[string]map[string]bool{} // what the client asked for, per type
		for i, op := range ops {
			typ := types[op&3]
			name := names[int(op>>2)%len(names)]
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typ}
			switch op >> 5 {
			case 0, 1, 2:
				req.ResourceNamesSubscribe = []string{name}
			case 3:
				req.ResourceNamesUnsubscribe = []string{name}
			case 4:
				req.InitialResourceVersions = map[string]string{name: "x"}
			case 5:
				if w := c.watches[typ]; w != nil {
					req.ResponseNonce = w.nonceSent
				}
				req.ErrorDetail = &statuspb.Status{Message: "bad"}
			case 6:
				s.pc.Store(m.set(pcs[i%2], states[i%2]))
				cs.sent = cs.sent[:0]
				if err := st.push(&model.PushRequest{Full: op&1 == 0, EDSHosts: map[string]struct{}{hostA: {}}}, time.Now()); err != nil {
					t.Fatal(err)
				}
				checkSent(t, i, cs.sent, subscribed)
				continue
			case 7:
				req.ResponseNonce = "stale"
			}
			if subscribed[typ] == nil {
				subscribed[typ] = map[string]bool{}
				if isWildcardType(typ) && len(req.ResourceNamesSubscribe) == 0 {
					subscribed[typ]["*"] = true
				}
			}
			for _, n := range req.ResourceNamesSubscribe {
				subscribed[typ][n] = true
			}
			for _, n := range req.ResourceNamesUnsubscribe {
				delete(subscribed[typ], n)
			}
			cs.sent = cs.sent[:0]
			// As the stream's receiving goroutine does: plain ACKs are
			// handled there, anything else by the loop.
			if !st.absorbACK(req) {
				if err := st.handle(req); err != nil {
					t.Fatal(err)
				}
			}
			checkSent(t, i, cs.sent, subscribed)
		}
		for typ, w := range c.watches {
			for n := range w.known.all {
				if !w.wildcard && !subscribed[typ][n.Value()] {
					t.Fatalf("server believes the client has %s %q it never subscribed to", shortType(typ), n.Value())
				}
			}
		}
	})
}

func checkSent(t *testing.T, op int, sent []*discoveryv3.DeltaDiscoveryResponse, subscribed map[string]map[string]bool) {
	t.Helper()
	for _, r := range sent {
		sub := subscribed[r.TypeUrl]
		for _, res := range r.Resources {
			if !sub["*"] && !sub[res.Name] {
				t.Fatalf("op %d: sent %s %q, not subscribed (%v)", op, shortType(r.TypeUrl), res.Name, sub)
			}
		}
	}
}
