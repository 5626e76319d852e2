package ads

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// FuzzSotwRequests feeds arbitrary sequences of state-of-the-world requests
// (new subscriptions, ACKs, NACKs, stale and unknown nonces, unknown type
// URLs, name changes) interleaved with pushes, as a misbehaving client could
// send them, and checks: no panic and no stream error for a request with a
// type URL, nothing sent beyond the subscription (LDS and CDS wildcard when
// no names or "*"), and nonces that never repeat.
func FuzzSotwRequests(f *testing.F) {
	f.Add([]byte{0x00, 0x21, 0x42, 0x63, 0x84})
	f.Add([]byte{0x01, 0x05, 0xc1, 0xa5, 0x09, 0xe0, 0x44})
	f.Add([]byte{0x04, 0x64, 0x24, 0xc4, 0x13, 0xf3})
	m := newTestMesh()
	m.noRecord = true
	pcs := []string{"v1", "v2"}
	states := []*meshState{baseState(), baseState()}
	delete(states[1].endpoints, hostC)
	states[1].listeners = nil
	for i, v := range pcs {
		m.set(v, states[i])
	}
	names := []string{"*", clA, clB, clC, "0.0.0.0_80", "80", "nope", ""}
	types := []string{ClusterType, EndpointType, ListenerType, RouteType,
		"type.googleapis.com/envoy.unknown.v3.Thing"}
	f.Fuzz(func(t *testing.T, ops []byte) {
		s := New(Config{Generate: m.generate, ClusterHost: parseClusterHost, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		s.Push(m.set("v1", states[0]), nil)
		cs := &captureStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]{}
		c := s.newConn(nodeProxy(t), "sotw")
		st := &sotwStream{c: c, stream: cs, out: startOutbox(sendSotw(cs), 0)}
		defer st.out.close()
		dec := newRequestDecoder()
		subscribed := map[string][]string{} // the names of the last request per type
		nonces := map[string]bool{}
		check := func(i int) {
			t.Helper()
			for _, r := range cs.sent {
				if nonces[r.Nonce] {
					t.Fatalf("op %d: nonce %q sent twice", i, r.Nonce)
				}
				nonces[r.Nonce] = true
				sub := subscribed[r.TypeUrl]
				wildcard := isWildcardType(r.TypeUrl) && (len(sub) == 0 || slices.Contains(sub, "*"))
				if wildcard {
					continue
				}
				for _, n := range resourceNames(t, r.Resources) {
					if !slices.Contains(sub, n) {
						t.Fatalf("op %d: sent %s %q, subscribed %v", i, shortType(r.TypeUrl), n, sub)
					}
				}
			}
			cs.sent = cs.sent[:0]
		}
		for i, op := range ops {
			typ := types[int(op&7)%len(types)]
			req := &discoveryv3.DiscoveryRequest{TypeUrl: typ}
			w := c.watches[typ]
			switch op >> 5 {
			case 0, 1:
				req.ResourceNames = []string{names[int(op>>3)%len(names)]}
			case 2:
				if w != nil { // ACK, maybe with other names
					req.ResponseNonce, req.VersionInfo = w.nonceSent, "v1"
					req.ResourceNames = slices.Clone(subscribed[typ])
					if op&8 != 0 {
						req.ResourceNames = append(req.ResourceNames, names[int(op>>3)%len(names)])
					}
				}
			case 3:
				if w != nil { // NACK
					req.ResponseNonce = w.nonceSent
					req.ResourceNames = slices.Clone(subscribed[typ])
					req.ErrorDetail = &statuspb.Status{Message: "bad"}
				}
			case 4:
				req.ResponseNonce = "stale"
				req.ResourceNames = []string{"ignored-" + names[int(op>>3)%len(names)]}
			case 5, 6:
				s.pc.Store(m.set(pcs[i%2], states[i%2]))
				if err := st.push(&model.PushRequest{Full: op&1 == 0, EDSHosts: map[string]struct{}{hostA: {}}}, time.Now()); err != nil {
					t.Fatal(err)
				}
				check(i)
				continue
			case 7:
				req.ResourceNames = nil // wildcard for LDS/CDS, nothing for EDS/RDS
			}
			// A stale nonce is ignored; anything else sets the subscription.
			if req.ResponseNonce == "" || (w != nil && req.ResponseNonce == w.nonceSent) {
				subscribed[typ] = req.ResourceNames
			}
			// Decoded and dispatched as the stream's receiving goroutine
			// does: plain ACKs are handled there, anything else by the loop.
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			r := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}, conn: c}
			if err := dec.decodeSotw(b, r); err != nil {
				t.Fatalf("op %d: decode: %v", i, err)
			}
			if !st.absorbACK(r) {
				if err := st.handle(r); err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
			}
			check(i)
		}
	})
}
