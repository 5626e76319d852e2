package ads

import (
	"io"
	"log/slog"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// newCaptureServer is a server on the test mesh at v1 and a connection of
// one proxy on it, driven without gRPC.
func newCaptureServer(t *testing.T, kind string) (*Server, *conn) {
	t.Helper()
	m := newTestMesh()
	s := New(Config{Generate: m.generate, ClusterHost: parseClusterHost, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.Push(m.set("v1", baseState()), nil)
	return s, s.newConn(nodeProxy(t), kind)
}

// An ACK the client sends before the loop gets back from Send (handled at
// once on the receiving goroutine) is taken for the ACK it is, not for a
// stale one.
func TestACKBeforeSendReturns(t *testing.T) {
	t.Run("delta", func(t *testing.T) {
		_, c := newCaptureServer(t, "delta")
		cs := &captureStream[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]{}
		st := &deltaStream{c: c, stream: cs}
		absorbed := 0
		st.out = startOutbox(func(r *discoveryv3.DeltaDiscoveryResponse) error {
			if st.absorbACK(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce}) {
				absorbed++
			}
			return cs.Send(r)
		}, 0)
		defer st.out.close()
		if err := st.handle(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType}); err != nil {
			t.Fatal(err)
		}
		if err := st.handle(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: []string{clA}}); err != nil {
			t.Fatal(err)
		}
		// The first response of a type creates its watch before it is
		// sent, so both ACKs were absorbed.
		if absorbed != 2 {
			t.Fatalf("%d ACKs absorbed, want 2", absorbed)
		}
		for _, typ := range []string{ClusterType, EndpointType} {
			w := c.watches[typ]
			if w.nonceAcked == "" || w.nonceAcked != w.nonceSent || w.versionAcked != "v1" {
				t.Fatalf("%s: acked %q %q, sent %q: an ACK before Send returned was taken for stale", shortType(typ), w.nonceAcked, w.versionAcked, w.nonceSent)
			}
		}
		if c.inflight.bytes != 0 {
			t.Fatalf("%d bytes still unanswered", c.inflight.bytes)
		}
	})
	t.Run("sotw", func(t *testing.T) {
		_, c := newCaptureServer(t, "sotw")
		cs := &captureStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]{}
		st := &sotwStream{c: c, stream: cs}
		dec := newRequestDecoder()
		absorbed := 0
		st.out = startOutbox(func(r *discoveryv3.DiscoveryResponse) error {
			b, _ := proto.Marshal(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: []string{clA}})
			req := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}, conn: c}
			if err := dec.decodeSotw(b, req); err != nil {
				t.Error(err)
			}
			if st.absorbACK(req) {
				absorbed++
			}
			return cs.Send(r)
		}, 0)
		defer st.out.close()
		if err := st.handle(&sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResourceNames: []string{clA}}}); err != nil {
			t.Fatal(err)
		}
		w := c.watches[EndpointType]
		if absorbed != 1 || w.nonceAcked == "" || w.nonceAcked != w.nonceSent || w.versionAcked != "v1" {
			t.Fatalf("absorbed %d; acked %q %q, sent %q", absorbed, w.nonceAcked, w.versionAcked, w.nonceSent)
		}
	})
}

// Only plain ACKs are handled on the receiving goroutine: anything that
// changes a subscription, reports an error, starts a type or carries a
// node goes to the loop.
func TestAbsorbOnlyPlainACKs(t *testing.T) {
	t.Run("delta", func(t *testing.T) {
		_, c := newCaptureServer(t, "delta")
		cs := &captureStream[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]{}
		st := &deltaStream{c: c, stream: cs, out: startOutbox(cs.Send, 0)}
		defer st.out.close()
		if err := st.handle(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: []string{clA}}); err != nil {
			t.Fatal(err)
		}
		nonce := c.watches[EndpointType].nonceSent
		for _, tc := range []struct {
			name string
			req  *discoveryv3.DeltaDiscoveryRequest
			want bool
		}{
			{"ack", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: nonce}, true},
			{"stale ack", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: "old"}, true},
			{"no nonce", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType}, false},
			{"nack", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: nonce, ErrorDetail: &statuspb.Status{Message: "bad"}}, false},
			{"subscribe", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: nonce, ResourceNamesSubscribe: []string{clB}}, false},
			{"unsubscribe", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: nonce, ResourceNamesUnsubscribe: []string{clA}}, false},
			{"initial versions", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: nonce, InitialResourceVersions: map[string]string{clB: "1"}}, false},
			{"node", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: nonce, Node: node("x")}, false},
			{"new type", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType, ResponseNonce: nonce}, false},
		} {
			if got := st.absorbACK(tc.req); got != tc.want {
				t.Errorf("%s: absorbed %v, want %v", tc.name, got, tc.want)
			}
		}
		if w := c.watches[EndpointType]; w.nonceAcked != nonce {
			t.Fatalf("the ACK was not recorded: acked %q, sent %q", w.nonceAcked, nonce)
		}
	})
	t.Run("sotw", func(t *testing.T) {
		_, c := newCaptureServer(t, "sotw")
		cs := &captureStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]{}
		st := &sotwStream{c: c, stream: cs, out: startOutbox(cs.Send, 0)}
		defer st.out.close()
		dec := newRequestDecoder()
		for _, r := range []*discoveryv3.DiscoveryRequest{{TypeUrl: EndpointType, ResourceNames: []string{clA, clB}}, {TypeUrl: ClusterType}} {
			if err := st.handle(&sotwRequest{DiscoveryRequest: r}); err != nil {
				t.Fatal(err)
			}
		}
		nonce := c.watches[EndpointType].nonceSent
		cdsNonce := c.watches[ClusterType].nonceSent
		for _, tc := range []struct {
			name string
			req  *discoveryv3.DiscoveryRequest
			want bool
		}{
			{"ack", &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: "v1", ResponseNonce: nonce, ResourceNames: []string{clA, clB}}, true},
			{"stale ack", &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: "v0", ResponseNonce: "old", ResourceNames: []string{clA, clB}}, true},
			{"other names", &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: "v1", ResponseNonce: nonce, ResourceNames: []string{clA}}, false},
			{"names reordered", &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: "v1", ResponseNonce: nonce, ResourceNames: []string{clB, clA}}, false},
			{"nack", &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: nonce, ResourceNames: []string{clA, clB}, ErrorDetail: &statuspb.Status{Message: "bad"}}, false},
			{"no nonce", &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResourceNames: []string{clA, clB}}, false},
			{"node", &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: nonce, ResourceNames: []string{clA, clB}, Node: node("x")}, false},
			{"wildcard", &discoveryv3.DiscoveryRequest{TypeUrl: ClusterType, VersionInfo: "v1", ResponseNonce: cdsNonce}, false},
			{"new type", &discoveryv3.DiscoveryRequest{TypeUrl: RouteType, ResponseNonce: nonce, ResourceNames: []string{"80"}}, false},
		} {
			b, err := proto.Marshal(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			r := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}, conn: c}
			if err := dec.decodeSotw(b, r); err != nil {
				t.Fatal(err)
			}
			if got := st.absorbACK(r); got != tc.want {
				t.Errorf("%s: absorbed %v, want %v", tc.name, got, tc.want)
			}
		}
		if w := c.watches[EndpointType]; w.nonceAcked != nonce || w.versionAcked != "v1" {
			t.Fatalf("the ACK was not recorded: acked %q %q, sent %q", w.nonceAcked, w.versionAcked, nonce)
		}
		// Decoded as repeating the subscription, which the loop then
		// changes before the request is dispatched: it goes to the loop.
		b, _ := proto.Marshal(&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: "v1", ResponseNonce: nonce, ResourceNames: []string{clA, clB}})
		r := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}, conn: c}
		if err := dec.decodeSotw(b, r); err != nil || !r.same {
			t.Fatalf("decode: %v, same %v", err, r.same)
		}
		if err := st.handle(&sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: "v1", ResponseNonce: nonce, ResourceNames: []string{clA}}}); err != nil {
			t.Fatal(err)
		}
		if st.absorbACK(r) {
			t.Fatal("absorbed a request whose names are no longer the subscription")
		}
	})
}
