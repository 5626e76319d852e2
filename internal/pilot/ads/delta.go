package ads

import (
	"slices"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

type deltaStream struct {
	c      *conn
	stream grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]
	out    *outbox[deltaResponse]
}

// DeltaAggregatedResources serves the incremental ADS protocol.
func (s *Server) DeltaAggregatedResources(stream grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) error {
	recv := func(*conn) (*discoveryv3.DeltaDiscoveryRequest, error) { return stream.Recv() }
	return serveStream(s, "delta", piecedStream[deltaResponse]{stream}, recv, func(c *conn, out *outbox[deltaResponse]) streamHandler[discoveryv3.DeltaDiscoveryRequest] {
		return &deltaStream{c: c, stream: stream, out: out}
	})
}

// handle processes one DeltaDiscoveryRequest. ACK/NACK bookkeeping applies
// only to the latest nonce; subscription changes always apply, since a delta
// request carries them only once.
func (st *deltaStream) handle(req *discoveryv3.DeltaDiscoveryRequest) error {
	c := st.c
	t := req.GetTypeUrl()
	if t == "" {
		return status.Error(codes.InvalidArgument, "xds: delta discovery request without type_url")
	}
	now := time.Now()
	w := c.watches[t]
	first := w == nil
	if first {
		w = c.newWatch(t)
		// Legacy wildcard: a first LDS/CDS request naming nothing wants everything.
		w.wildcard = isWildcardType(t) && len(req.ResourceNamesSubscribe) == 0
		for n, v := range req.InitialResourceVersions {
			w.known.set(c.s.known, intern(n), parseVersion(v))
		}
		c.addWatch(w)
	}
	if req.ResponseNonce != "" {
		c.mu.Lock()
		c.inflight.answered(req.ResponseNonce)
		c.mu.Unlock()
		switch {
		case req.ResponseNonce != w.nonceSent:
			c.s.log.Debug("xds: delta ACK/NACK for a stale nonce", "proxy", c.proxy.ID, "type", shortType(t), "nonce", req.ResponseNonce, "latest", w.nonceSent)
		case req.ErrorDetail != nil:
			c.recordNACK(w, req.ResponseNonce, req.ErrorDetail.GetMessage())
		default:
			c.recordACK(w, req.ResponseNonce, w.versionSent)
		}
	}
	addedWildcard := false
	c.mu.Lock()
	if slices.Contains(req.ResourceNamesSubscribe, "*") && !w.wildcard {
		w.wildcard, addedWildcard = true, true
	}
	added := w.names.add(req.ResourceNamesSubscribe)
	if slices.Contains(req.ResourceNamesUnsubscribe, "*") && w.wildcard {
		w.wildcard = false
		// The client drops what it had only through the wildcard.
		w.forgetUnsubscribed(c.s.known)
	}
	if w.names.remove(req.ResourceNamesUnsubscribe) || len(added) > 0 {
		w.names = w.tables.share(w.names)
		w.namesGen++
	}
	if !w.wildcard {
		for _, n := range req.ResourceNamesUnsubscribe {
			w.known.delete(c.s.known, intern(n))
		}
	}
	if first && !w.wildcard {
		// Initial versions count only for resources the client subscribes to.
		w.forgetUnsubscribed(c.s.known)
	}
	w.known.seal(c.s.known)
	w.resources = w.known.len()
	c.mu.Unlock()
	switch {
	case first || addedWildcard:
		return st.respond(w, nil, now, true, first)
	case len(added) > 0:
		return st.respond(w, added, now, true, false)
	}
	return nil
}

// absorbACK handles a request that only acknowledges a response: one
// naming a nonce, with no error and no subscription change, of a type the
// stream already watches.
func (st *deltaStream) absorbACK(req *discoveryv3.DeltaDiscoveryRequest) bool {
	if req.ResponseNonce == "" || req.ErrorDetail != nil || len(req.ResourceNamesSubscribe) > 0 ||
		len(req.ResourceNamesUnsubscribe) > 0 || len(req.InitialResourceVersions) > 0 || req.Node != nil {
		return false
	}
	c := st.c
	c.mu.Lock()
	w := c.watches[req.TypeUrl]
	if w == nil {
		c.mu.Unlock()
		return false
	}
	c.inflight.answered(req.ResponseNonce)
	if nonce, version := c.latestSent(w); req.ResponseNonce != nonce {
		c.s.log.Debug("xds: delta ACK for a stale nonce", "proxy", c.proxy.ID, "type", shortType(req.TypeUrl), "nonce", req.ResponseNonce, "latest", nonce)
	} else {
		w.nonceAcked, w.versionAcked = nonce, version
	}
	c.unlockAnswered()
	return true
}

// forgetUnsubscribed drops the known versions of resources the watch does
// not subscribe to by name.
func (w *watch) forgetUnsubscribed(t *knownTables) {
	var drop []name
	w.known.all(func(k name, _ uint64) bool {
		if !w.names.has(k.Value()) {
			drop = append(drop, k)
		}
		return true
	})
	for _, k := range drop {
		w.known.delete(t, k)
	}
}

// push sends what changed since the client's known versions, in Envoy's
// make-before-break order.
func (st *deltaStream) push(req *model.PushRequest, since time.Time) error {
	pc := st.c.s.current()
	var scope RouteScoper
	for _, w := range st.c.orderedWatches() {
		if req.FullType(st.c.proxy, w.typeURL) {
			names, skip := st.c.scopedNames(pc, req, w, &scope)
			if skip {
				continue
			}
			if err := st.respond(w, names, since, false, false); err != nil {
				return err
			}
			continue
		}
		if w.typeURL != EndpointType || len(req.EDSHosts) == 0 {
			continue
		}
		var names []string
		if !w.wildcard {
			if names = st.c.edsNames(w, req); len(names) == 0 {
				continue
			}
		}
		if err := st.respond(w, names, since, false, false); err != nil {
			return err
		}
	}
	return nil
}

// respond generates resources for names (nil: everything w subscribes to)
// and sends those whose version differs from what the client has, plus
// removed_resources for those that no longer exist. With reportMissing,
// requested names that do not exist are listed as removed, which is how the
// incremental protocol tells a client a resource does not exist. With force,
// a response is sent even when nothing changed (the first one for a type).
func (st *deltaStream) respond(w *watch, names []string, since time.Time, reportMissing, force bool) error {
	c := st.c
	pc := c.s.current()
	if pc == nil {
		return nil // answered at the first Push
	}
	all := names == nil && w.wildcard
	if names == nil && !w.wildcard {
		names = w.sortedNames()
		if len(names) == 0 && !force {
			return nil
		}
	}
	var ms []marshaled
	var slot *pushSlot // nil: none held
	if all || len(names) > 0 {
		var ok bool
		var err error
		if ms, slot, ok, err = c.generate(st.stream.Context(), pc, w, names, true); err != nil || !ok {
			return err
		}
	}
	resp := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: pc.Version, TypeUrl: w.typeURL}
	out := &deltaResponse{msg: resp}
	size := 0
	got := newNameLookup(len(ms))
	sent := make([]knownEntry, 0, len(ms)) // names and versions of resp.Resources
	for i := range ms {
		m := &ms[i]
		n := intern(m.name)
		got.add(n)
		if v, ok := w.known.get(c.s.known, n); ok && v == m.version {
			continue
		}
		if m.pieces != nil {
			out.pieced = append(out.pieced, piecedValue{len(resp.Resources), m.pieces})
		}
		resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: m.name, Version: formatVersion(m.version), Resource: m.any})
		sent = append(sent, knownEntry{n, m.version})
		size += m.size()
	}
	if all {
		w.known.all(func(n name, _ uint64) bool {
			if !got.has(n) {
				resp.RemovedResources = append(resp.RemovedResources, n.Value())
			}
			return true
		})
		slices.Sort(resp.RemovedResources)
	} else {
		for _, n := range names {
			hn := intern(n)
			if got.has(hn) {
				continue
			}
			if _, had := w.known.get(c.s.known, hn); had || reportMissing {
				resp.RemovedResources = append(resp.RemovedResources, n)
			}
		}
	}
	if len(resp.Resources) == 0 && len(resp.RemovedResources) == 0 && !force {
		slot.release()
		return nil
	}
	resp.Nonce = c.nextNonce()
	c.handing(w, resp.Nonce, resp.SystemVersionInfo)
	start := time.Now()
	if err := st.out.deliver(st.stream.Context(), c, out, resp.Nonce, deltaWireBound(out), slot); err != nil {
		return err
	}
	removed := make([]name, len(resp.RemovedResources))
	for i, n := range resp.RemovedResources {
		removed[i] = intern(n)
	}
	c.mu.Lock()
	w.known.update(c.s.known, sent, removed)
	count := w.known.len()
	c.mu.Unlock()
	c.sent(w, count, size, since, start)
	return nil
}

// nameLookup is a set of the names a response generated: a slice scanned
// for the few of a typical push (an endpoint push sends a proxy one
// service's clusters), a map for many (a first or wildcard response).
type nameLookup struct {
	few  []name
	many map[name]struct{}
}

// maxScanned is the most names a nameLookup scans rather than maps.
const maxScanned = 16

func newNameLookup(n int) nameLookup {
	if n > maxScanned {
		return nameLookup{many: make(map[name]struct{}, n)}
	}
	return nameLookup{few: make([]name, 0, n)}
}

func (l *nameLookup) add(n name) {
	if l.many != nil {
		l.many[n] = struct{}{}
		return
	}
	l.few = append(l.few, n)
}

func (l *nameLookup) has(n name) bool {
	if l.many != nil {
		_, ok := l.many[n]
		return ok
	}
	return slices.Contains(l.few, n)
}
