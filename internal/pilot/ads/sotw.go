package ads

import (
	"encoding/binary"
	"time"

	"github.com/cespare/xxhash/v2"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

type sotwStream struct {
	c      *conn
	stream grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	out    *outbox[sotwResponse]
}

// StreamAggregatedResources serves the state-of-the-world ADS protocol.
func (s *Server) StreamAggregatedResources(stream grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	recv := func(c *conn) (*sotwRequest, error) {
		r := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}, conn: c}
		if err := stream.RecvMsg(r); err != nil {
			return nil, err
		}
		return r, nil
	}
	return serveStream(s, "sotw", piecedStream[sotwResponse]{stream}, recv, func(c *conn, out *outbox[sotwResponse]) streamHandler[sotwRequest] {
		return &sotwStream{c: c, stream: stream, out: out}
	})
}

// handle processes one DiscoveryRequest: a new subscription, an ACK, a NACK,
// or a change of subscribed names.
func (st *sotwStream) handle(req *sotwRequest) error {
	c := st.c
	if req.GetTypeUrl() == "" {
		return status.Error(codes.InvalidArgument, "xds: discovery request without type_url")
	}
	c.mu.Lock()
	c.inflight.answered(req.ResponseNonce)
	c.mu.Unlock()
	now := time.Now()
	w := c.watches[req.TypeUrl]
	if w == nil || req.ResponseNonce == "" {
		// First request for this type, or a client asking afresh.
		if w == nil {
			w = c.newWatch(req.TypeUrl)
			w.setSotwNames(req.names())
			c.addWatch(w)
		} else {
			c.mu.Lock()
			w.setSotwNames(req.names())
			c.mu.Unlock()
		}
		return st.respond(w, nil, now, false, false)
	}
	if req.ResponseNonce != w.nonceSent {
		// Stale: the client has not seen our latest response yet and will
		// answer that one; the xDS protocol says to ignore this request.
		c.s.log.Debug("xds: ignoring request with stale nonce", "proxy", c.proxy.ID, "type", shortType(req.TypeUrl), "nonce", req.ResponseNonce, "latest", w.nonceSent)
		return nil
	}
	if req.ErrorDetail != nil {
		c.recordNACK(w, req.ResponseNonce, req.ErrorDetail.GetMessage())
	} else {
		c.recordACK(w, req.ResponseNonce, req.VersionInfo)
	}
	c.mu.Lock()
	changed := w.setSotwRequestNames(req)
	c.mu.Unlock()
	if !changed {
		return nil
	}
	return st.respond(w, nil, now, false, false)
}

// absorbACK handles a request that only acknowledges a response: one
// naming a nonce, with no error, whose resource names are the stream's
// current subscription of its type (the codec found them so: sotwRequest).
func (st *sotwStream) absorbACK(req *sotwRequest) bool {
	if req.ResponseNonce == "" || req.ErrorDetail != nil || !req.same || req.Node != nil {
		return false
	}
	c := st.c
	c.mu.Lock()
	w := c.watches[req.TypeUrl]
	if w == nil || w.wildcard || len(w.names) != len(req.subscribed) || &w.names[0] != &req.subscribed[0] {
		c.mu.Unlock()
		return false // the subscription changed since the request was decoded
	}
	c.inflight.answered(req.ResponseNonce)
	if nonce, _ := c.latestSent(w); req.ResponseNonce != nonce {
		c.s.log.Debug("xds: ignoring request with stale nonce", "proxy", c.proxy.ID, "type", shortType(req.TypeUrl), "nonce", req.ResponseNonce, "latest", nonce)
	} else {
		w.nonceAcked = req.ResponseNonce
		w.versionAcked = req.VersionInfo
	}
	c.unlockAnswered()
	return true
}

// push sends what req says changed, in Envoy's make-before-break order.
func (st *sotwStream) push(req *model.PushRequest, since time.Time) error {
	// A push limited to some types comes from a change mastd classified
	// (controlplane/classify.go): of those types, only the ones whose
	// resources really changed for this proxy are sent.
	onlyIfChanged := req.Types != nil
	pc := st.c.s.current()
	var scope RouteScoper
	for _, w := range st.c.orderedWatches() {
		if req.FullType(st.c.proxy, w.typeURL) {
			// A response carries every subscribed name: the scope only
			// says whether any of them can have changed.
			if _, skip := st.c.scopedNames(pc, req, w, &scope); skip {
				continue
			}
			if err := st.respond(w, nil, since, false, onlyIfChanged); err != nil {
				return err
			}
			continue
		}
		if w.typeURL != EndpointType || len(req.EDSHosts) == 0 || w.wildcard {
			continue
		}
		names := st.c.edsNames(w, req)
		if len(names) == 0 {
			continue
		}
		if err := st.respond(w, names, since, true, false); err != nil {
			return err
		}
	}
	return nil
}

// respond generates and sends the subscribed resources of w, or only names
// when given. In SotW, LDS and CDS responses always carry every resource;
// for EDS and RDS a response may carry a subset (partial is true), and an
// empty subset is not sent. With onlyIfChanged, a response whose resources
// are exactly those of the last complete one (same names and wire forms)
// is not sent: the proxy has them.
func (st *sotwStream) respond(w *watch, names []string, since time.Time, partial, onlyIfChanged bool) error {
	c := st.c
	pc := c.s.current()
	if pc == nil {
		return nil // answered at the first Push
	}
	if names == nil && !w.wildcard {
		if len(w.names) == 0 {
			return nil // subscribed to nothing
		}
		names = w.sortedNames()
	}
	ms, slot, ok, err := c.generate(st.stream.Context(), pc, w, names, true)
	if err != nil || !ok {
		return err
	}
	if partial && len(ms) == 0 {
		slot.release()
		return nil
	}
	digest := digestOf(ms)
	if onlyIfChanged && w.digestValid && w.digest == digest {
		slot.release()
		return nil
	}
	resp := &discoveryv3.DiscoveryResponse{
		VersionInfo: pc.Version,
		TypeUrl:     w.typeURL,
		Nonce:       c.nextNonce(),
		Resources:   make([]*anypb.Any, len(ms)),
	}
	out := &sotwResponse{msg: resp}
	size := 0
	for i := range ms {
		resp.Resources[i] = ms[i].any
		if ms[i].pieces != nil {
			out.pieced = append(out.pieced, piecedValue{i, ms[i].pieces})
		}
		size += ms[i].size()
	}
	c.handing(w, resp.Nonce, resp.VersionInfo)
	start := time.Now()
	if err := st.out.deliver(st.stream.Context(), c, out, resp.Nonce, sotwWireBound(out), slot); err != nil {
		return err
	}
	c.sent(w, len(ms), size, since, start)
	// The digest describes what the client holds after a complete
	// response; a partial one (some EDS clusters) leaves it unknown.
	w.digest, w.digestValid = digest, !partial
	return nil
}

// digestOf combines the names and versions of a response's resources.
func digestOf(ms []marshaled) uint64 {
	d := xxhash.New()
	var b [8]byte
	for i := range ms {
		d.WriteString(ms[i].name)
		binary.LittleEndian.PutUint64(b[:], ms[i].version)
		d.Write(b[:])
	}
	return d.Sum64()
}
