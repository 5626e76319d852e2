package ads

import (
	"io"
	"log/slog"
	"slices"
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
		st.out = startOutbox(func(r *deltaResponse) error {
			if st.absorbACK(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.msg.TypeUrl, ResponseNonce: r.msg.Nonce}) {
				absorbed++
			}
			return cs.Send(r.joined())
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
		st.out = startOutbox(func(r *sotwResponse) error {
			b, _ := proto.Marshal(&discoveryv3.DiscoveryRequest{TypeUrl: r.msg.TypeUrl, VersionInfo: r.msg.VersionInfo, ResponseNonce: r.msg.Nonce, ResourceNames: []string{clA}})
			req := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}, conn: c}
			if err := dec.decodeSotw(b, req); err != nil {
				t.Error(err)
			}
			if st.absorbACK(req) {
				absorbed++
			}
			return cs.Send(r.joined())
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
		st := &deltaStream{c: c, stream: cs, out: startOutbox(sendDelta(cs), 0)}
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
		st := &sotwStream{c: c, stream: cs, out: startOutbox(sendSotw(cs), 0)}
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

// A SotW subscription large enough to be shared (and its ACKs compared
// with its wire form): after plain ACKs, a changed subscription, a NACK
// and a reconnection are each still handled as such.
func TestRepeatedSubscriptionChangesNACKsReconnects(t *testing.T) {
	s, c := newCaptureServer(t, "sotw")
	names := append(manyClusters(minShared), clA, clB)
	slices.Sort(names)
	dec := newRequestDecoder()
	type stream struct {
		c  *conn
		cs *captureStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
		st *sotwStream
	}
	open := func(c *conn) stream {
		cs := &captureStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]{}
		st := &sotwStream{c: c, stream: cs, out: startOutbox(sendSotw(cs), 0)}
		t.Cleanup(st.out.close)
		return stream{c, cs, st}
	}
	// dispatch decodes req as the stream's receiving goroutine does (conn
	// nil for a stream's first request) and reports whether it was
	// absorbed as a plain ACK.
	dispatch := func(s stream, req *discoveryv3.DiscoveryRequest, first bool) bool {
		t.Helper()
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		r := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}}
		if !first {
			r.conn = s.c
		}
		if err := dec.decodeSotw(b, r); err != nil {
			t.Fatal(err)
		}
		if !first && s.st.absorbACK(r) {
			return true
		}
		if err := s.st.handle(r); err != nil {
			t.Fatal(err)
		}
		return false
	}
	lastSent := func(s stream) []string {
		t.Helper()
		if len(s.cs.sent) == 0 {
			t.Fatal("nothing sent")
		}
		return resourceNames(t, s.cs.sent[len(s.cs.sent)-1].Resources)
	}

	a := open(c)
	dispatch(a, &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResourceNames: names, Node: node("a")}, true)
	w := c.watches[EndpointType]
	if got := lastSent(a); !slices.Equal(got, []string{clA, clB}) {
		t.Fatalf("first response %v", got)
	}
	ack := func(s stream, names []string) *discoveryv3.DiscoveryRequest {
		w := s.c.watches[EndpointType]
		return &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, VersionInfo: w.versionSent, ResponseNonce: w.nonceSent, ResourceNames: names}
	}
	if !dispatch(a, ack(a, names), false) || w.nonceAcked != w.nonceSent {
		t.Fatal("the plain ACK was not absorbed and recorded")
	}

	// A changed subscription (clB dropped) with the latest nonce.
	fewer := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == clB })
	sent := len(a.cs.sent)
	if dispatch(a, ack(a, fewer), false) {
		t.Fatal("a changed subscription was absorbed as an ACK")
	}
	if len(a.cs.sent) != sent+1 || !slices.Equal(lastSent(a), []string{clA}) || w.names.has(clB) {
		t.Fatalf("after the change: sent %v, subscribed to %s: %v", lastSent(a), clB, w.names.has(clB))
	}
	if !dispatch(a, ack(a, fewer), false) {
		t.Fatal("the ACK of the new subscription was not absorbed")
	}

	// A NACK repeating the subscription.
	nack := ack(a, fewer)
	nack.ErrorDetail = &statuspb.Status{Message: "bad endpoints"}
	if dispatch(a, nack, false) {
		t.Fatal("a NACK was absorbed as an ACK")
	}
	if w.nonceNacked != nack.ResponseNonce || w.lastNACK != "bad endpoints" {
		t.Fatalf("NACK not recorded: nacked %q %q", w.nonceNacked, w.lastNACK)
	}

	// The proxy reconnects: a new stream, whose first request carries the
	// node and the whole subscription again, then ACKs.
	b := open(s.newConn(nodeProxy(t), "sotw"))
	dispatch(b, &discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResourceNames: names, Node: node("a")}, true)
	if got := lastSent(b); !slices.Equal(got, []string{clA, clB}) {
		t.Fatalf("first response after reconnecting %v", got)
	}
	if !dispatch(b, ack(b, names), false) {
		t.Fatal("the ACK on the new stream was not absorbed")
	}
	if wb := b.c.watches[EndpointType]; wb.nonceAcked != wb.nonceSent {
		t.Fatalf("new stream: acked %q, sent %q", wb.nonceAcked, wb.nonceSent)
	}
}
