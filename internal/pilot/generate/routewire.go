package generate

import (
	"sort"
	"sync/atomic"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// With a cache, a capturing sidecar's route configuration "PORT" is
// assembled in wire form: a repeated message field's encoding is the
// concatenation of its elements' tag, length and bytes, so the route
// configuration's encoding is its other fields' encoding with the virtual
// hosts' cached encodings spliced in at field 2, in portRoute's order. The
// order and the domains of the virtual hosts (portLayout) depend only on
// the scope's services, the proxy's namespace and the port, so they are
// kept across configuration changes; a default virtual host's encoding is
// kept with it (defaultVhostKey). After a VirtualService change, a
// route configuration costs the virtual hosts of services with
// VirtualServices, a lookup per default virtual host and one concatenation,
// instead of laying out and re-encoding 1,000 virtual hosts per namespace,
// and its bytes are shared by every proxy that gets it (model.EncodedWire).
// The message is assembled too, from the same virtual host messages, for
// whoever reads it (config dump, EnvoyFilter patches); the uncached
// portRoute is the oracle: TestCacheOracle and its variants hold both the
// message and the assembled bytes to proto.Marshal of its output.

// portLayout is the virtual hosts of a sidecar's route configuration "PORT"
// as portRoute lays them out: the scope's services with the port as HTTP,
// in scope order, each with its domains less those an earlier one took, a
// service left with none dropped; then the catch-all unless a service took
// "*". Whether a service has VirtualServices is not part of it. Immutable
// but for lastUsed and last.
type portLayout struct {
	vhosts []layoutVhost
	star   bool // a service's domains include "*": no catch-all
	lastUsed
	// last is the latest assembly of the layout by a proxy that traces
	// (1) or not (0): the next one copies from it what did not change.
	last [2]atomic.Pointer[assembly]
	// defaults are the default virtual hosts' entries of the latest
	// assemblies.
	defaults atomic.Pointer[keptDefaults]
}

// assembly is an assembled route configuration: its wire form in pieces
// (wire; starts has where each piece starts and, last, the end), the
// virtual hosts' encodings spliced into it and where each one's field
// starts (offs has one more, the end of the last). Immutable, pieces
// included: gRPC writes them as they are, to slow connections too, for as
// long as it takes, so no later assembly may write into them.
type assembly struct {
	wire   [][]byte
	starts []int
	parts  [][]byte
	offs   []int
}

type layoutVhost struct {
	svc *registry.Service
	// clipped: an earlier service took some of the service's domains;
	// domains are those left. Otherwise domains is nil: the service's own
	// (vhostDomains with nothing taken), as its shared virtual host has them.
	clipped bool
	domains []string
}

// portLayout returns the layout of the proxy's route configuration "PORT",
// kept across push contexts under portTable's key.
func (g *gen) portLayout(st *cacheState, port uint32) *portLayout {
	return loadOrBuild(&g.cache.layouts, g.portTableKey(port), st.gen, func() *portLayout { return g.buildPortLayout(port) })
}

// buildPortLayout walks the scope's services as portRoute does.
func (g *gen) buildPortLayout(port uint32) *portLayout {
	l := &portLayout{}
	ds := make(domainSet, 10*len(g.scope.Services))
	for _, svc := range g.scope.Services {
		sp, ok := svc.PortByNumber(port)
		if !ok || !sp.Protocol.IsHTTP() {
			continue
		}
		own := len(g.vhostDomains(domainSet{}, svc))
		domains := g.vhostDomains(ds, svc)
		if len(domains) == 0 {
			continue
		}
		lv := layoutVhost{svc: svc}
		if len(domains) != own {
			lv.clipped, lv.domains = true, domains
		}
		l.vhosts = append(l.vhosts, lv)
	}
	_, l.star = ds["*"]
	return l
}

// assembledPortRoute returns the route configuration "PORT" as portRoute
// and sidecarRoute build it (decorated when traced), and its wire form
// assembled from the virtual hosts' encodings, in pieces (spliceRepeated);
// nil when an encoding
// failed (the server then marshals the message and reports the error).
func (g *gen) assembledPortRoute(st *cacheState, port uint32, traced bool) (*routev3.RouteConfiguration, [][]byte) {
	l := g.portLayout(st, port)
	rc := sidecarRouteConfig(itoa(port))
	head, err := deterministicMarshal(rc)
	vhosts := make([]*routev3.VirtualHost, 0, len(l.vhosts)+1)
	parts := make([][]byte, 0, len(l.vhosts)+1)
	add := func(vh *routev3.VirtualHost, b []byte, e error) {
		vhosts = append(vhosts, vh)
		parts = append(parts, b)
		if err == nil {
			err = e
		}
	}
	kept, dkey := g.defaultsFor(st, l, traced)
	entries := make([]*cacheEntry, len(l.vhosts))
	for i, lv := range l.vhosts {
		svc := lv.svc
		if len(g.scope.VirtualServicesFor(svc.Hostname)) == 0 {
			vh, e := g.defaultEntry(st, kept, i, svc, port, traced)
			entries[i] = e
			if !lv.clipped {
				b, werr := e.wireForm()
				add(vh, b, werr)
				continue
			}
			own := proto.Clone(vh).(*routev3.VirtualHost)
			own.Domains = lv.domains
			b, merr := deterministicMarshal(own)
			add(own, b, merr)
			continue
		}
		domains := lv.domains
		if !lv.clipped {
			domains = g.vhostDomains(domainSet{}, svc)
		}
		vh := decoratedVhost(&routev3.VirtualHost{
			Name:    svc.Hostname + ":" + itoa(port),
			Domains: domains,
			Routes:  g.serviceRoutes(svc, port),
		}, traced)
		b, merr := deterministicMarshal(vh)
		add(vh, b, merr)
	}
	if !l.star {
		vh := decoratedVhost(g.catchAllVhost(), traced)
		b, merr := deterministicMarshal(vh)
		add(vh, b, merr)
	}
	rc.VirtualHosts = vhosts
	keepDefaults(&l.defaults, dkey, entries)
	if err != nil {
		return rc, nil
	}
	last := &l.last[b2i(traced)]
	a := spliceRepeated(head, vhostsField, parts, last.Load())
	if a == nil {
		return rc, nil
	}
	last.Store(a)
	return rc, a.wire
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// vhostsField is RouteConfiguration.virtual_hosts.
const vhostsField protowire.Number = 2

// spliceRepeated returns the encoding of a message whose other fields encode
// as head (deterministically, so in field number order) with the repeated
// message field n holding parts, in order: each part's tag and length
// inserted before head's first field numbered above n. Nil when head does
// not parse.
//
// The encoding is in pieces. A run of parts that are the very slices at the
// same places in prev (the last assembly of field n with the same head) is
// not copied: its bytes are referenced where prev holds them. After a
// change, all but a few of a route configuration's thousand virtual hosts
// are such a run, so an assembly writes only its changed virtual hosts and
// head into a fresh buffer and the rest is a few references, instead of a
// copy of the whole route configuration per namespace per change. When
// less than half the bytes would be referenced, or the references would
// make more than maxPieces pieces, it is written whole into one buffer.
func spliceRepeated(head []byte, n protowire.Number, parts [][]byte, prev *assembly) *assembly {
	split := 0
	for split < len(head) {
		num, typ, tl := protowire.ConsumeTag(head[split:])
		if tl < 0 {
			return nil
		}
		if num > n {
			break
		}
		vl := protowire.ConsumeFieldValue(num, typ, head[split+tl:])
		if vl < 0 {
			return nil
		}
		split += tl + vl
	}
	offs := make([]int, len(parts)+1)
	at := split
	for i, b := range parts {
		offs[i] = at
		at += protowire.SizeTag(n) + protowire.SizeBytes(len(b))
	}
	offs[len(parts)] = at
	total := at + len(head) - split
	runs := keptRuns(parts, prev)
	kept := 0
	for _, r := range runs {
		kept += offs[r.to] - offs[r.from]
	}
	a := &assembly{parts: parts, offs: offs}
	if kept > 0 && 2*kept >= total {
		a.wire = writeSplice(make([]byte, 0, total-kept), head, split, n, parts, runs, prev, true)
		if len(a.wire) > maxPieces {
			a.wire = [][]byte{joinPieces(a.wire, total)}
		}
	} else {
		a.wire = writeSplice(make([]byte, 0, total), head, split, n, parts, runs, prev, false)
	}
	a.starts = pieceStarts(a.wire)
	return a
}

// maxPieces bounds the pieces of an assembly. Each piece of a kilobyte or
// more is one more buffer of each response that carries it (the ADS codec
// references it; smaller ones it copies), and references to references
// accumulate change after change while they are allowed to. A change of a
// route configuration with k services with VirtualServices in it (their
// virtual hosts are encoded afresh) makes about 2k+3 pieces.
const maxPieces = 64

// run is parts[from:to], the same slices as prev's at the same indexes.
type run struct{ from, to int }

// keptRuns returns the runs of parts that are prev's, in order.
func keptRuns(parts [][]byte, prev *assembly) []run {
	if prev == nil {
		return nil
	}
	var runs []run
	for i := 0; i < len(parts); {
		j := i
		for j < len(parts) && j < len(prev.parts) && sameSlice(parts[j], prev.parts[j]) {
			j++
		}
		if j > i {
			runs = append(runs, run{i, j})
			i = j
			continue
		}
		i++
	}
	return runs
}

// writeSplice writes the encoding spliceRepeated describes as pieces:
// everything but the runs appended to buf in order, and the runs' bytes
// referenced in prev's pieces when refer, else copied from them to buf (in
// one piece per run rather than part by part). buf has room for what is
// appended to it, so the pieces cut from it are never moved.
func writeSplice(buf []byte, head []byte, split int, n protowire.Number, parts [][]byte, runs []run, prev *assembly, refer bool) [][]byte {
	var w pieces
	from := 0
	cut := func() {
		w.add(buf[from:])
		from = len(buf)
	}
	buf = append(buf, head[:split]...)
	for i := 0; i < len(parts); {
		if len(runs) > 0 && runs[0].from == i {
			lo, hi := prev.offs[i], prev.offs[runs[0].to]
			if refer {
				cut()
				prev.refer(&w, lo, hi)
			} else {
				buf = prev.appendRange(buf, lo, hi)
			}
			i, runs = runs[0].to, runs[1:]
			continue
		}
		buf = protowire.AppendTag(buf, n, protowire.BytesType)
		buf = protowire.AppendBytes(buf, parts[i])
		i++
	}
	buf = append(buf, head[split:]...)
	cut()
	return w
}

// pieces is an encoding in pieces under construction: a piece that
// continues the last one in memory extends it.
type pieces [][]byte

func (w *pieces) add(b []byte) {
	if len(b) == 0 {
		return
	}
	if k := len(*w) - 1; k >= 0 {
		if last := (*w)[k]; follows(last, b) {
			(*w)[k] = last[:len(last)+len(b)]
			return
		}
	}
	*w = append(*w, b)
}

// follows reports whether b starts where a ends, in a's array (so b's
// bytes are a's array's next ones: two arrays never overlap).
func follows(a, b []byte) bool {
	return len(a) < cap(a) && len(b) > 0 && &a[:len(a)+1][len(a)] == &b[0]
}

// refer adds the bytes of a's encoding in [from, to) to w, as the pieces of
// a that hold them.
func (a *assembly) refer(w *pieces, from, to int) {
	a.each(from, to, func(b []byte) { w.add(b) })
}

// appendRange appends the bytes of a's encoding in [from, to) to buf.
func (a *assembly) appendRange(buf []byte, from, to int) []byte {
	a.each(from, to, func(b []byte) { buf = append(buf, b...) })
	return buf
}

// each calls f with the pieces of a's encoding in [from, to), in order.
func (a *assembly) each(from, to int, f func([]byte)) {
	k := sort.SearchInts(a.starts, from+1) - 1 // the piece holding from
	for ; from < to; k++ {
		p := a.wire[k]
		lo, hi := from-a.starts[k], min(len(p), to-a.starts[k])
		f(p[lo:hi])
		from = a.starts[k] + hi
	}
}

// pieceStarts returns where each piece starts, then the end of the last.
func pieceStarts(wire [][]byte) []int {
	starts := make([]int, len(wire)+1)
	for i, p := range wire {
		starts[i+1] = starts[i] + len(p)
	}
	return starts
}

// joinPieces returns the pieces' bytes in one fresh buffer of size total.
func joinPieces(wire [][]byte, total int) []byte {
	out := make([]byte, 0, total)
	for _, p := range wire {
		out = append(out, p...)
	}
	return out
}

// sameSlice reports whether a and b are the same bytes in memory.
func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// portRouteConfig is the sidecar route configuration "PORT" through the
// cache: assembled in wire form when there is one.
func (g *gen) portRouteConfig(name string, port uint32) (*routev3.RouteConfiguration, *model.Encoded) {
	full := func() *routev3.RouteConfiguration { return g.portRoute(port) }
	if g.cache == nil {
		return g.sidecarRoute(name, full)
	}
	st := g.cache.state(g.pc)
	traced := g.pc.Traced(g.p)
	e := entry(g.cache, st, g.routeKey(st, name, traced), func() (proto.Message, [][]byte) {
		return g.assembledPortRoute(st, port, traced)
	}, func() proto.Message {
		rc := full()
		if traced {
			decorate(rc, nil)
		}
		return rc
	})
	return e.msg.(*routev3.RouteConfiguration), e.enc
}
