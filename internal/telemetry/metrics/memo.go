package metrics

import (
	"slices"
	"unsafe"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// SeriesMemo is a caller's memo of the HTTP series it recorded last: its
// registry and builder, the series, the record fields its labels were
// built from and the standard labels themselves. A caller keeps one per
// request state, across requests (one request at a time uses it), and
// passes it to RecordHTTP.
//
// Consecutive requests on a connection usually have the same labels, built
// from the same fields: the same peer (the peer cache's decoded peers), the
// same cluster or authority, the same response code. When a request's
// fields are the memo's, its labels are the memo's and are not built at
// all; when they differ but build the same labels (another copy of an
// equal peer), comparing the labels with the memo's still costs less than
// the series key and its map lookup. Most strings compared are the very
// strings held (constants, the peer cache's, a kept header value), which
// compare by pointer; others by their bytes: the memo never answers for a
// request whose labels differ.
//
// The memo holds the strings of the last request whose labels it built
// until another one replaces them: at most a few header values (the
// authority, grpc-status) and the head they were sliced from.
type SeriesMemo struct {
	reg *Registry
	b   *Builder
	s   *httpSeries
	in  buildInputs
	std [NumLabels]string
}

// buildInputs are the record fields Builder.Build reads, as the record's
// side reads them: records with equal inputs get equal standard labels
// from the same builder. Peers are compared by pointer: a peer is not
// changed once a record names it (the peer cache shares its peers
// read-only), so the same pointer is the same metadata.
type buildInputs struct {
	peer       *telemetry.Peer
	principal  string
	service    string   // outbound: the upstream cluster; inbound: the authority
	services   []string // inbound: the cluster's services
	grpcStatus string
	protocol   string // request_protocol, which also says TCP
	code       int
	flags      telemetry.Flags
	outbound   bool
	mtls       bool
}

func inputsOf(rec *telemetry.Record) buildInputs {
	in := buildInputs{grpcStatus: rec.GRPCStatus, protocol: protocol(rec), code: rec.ResponseCode, flags: rec.Flags,
		outbound: rec.Outbound}
	if rec.Outbound {
		in.peer, in.principal, in.service = rec.UpstreamPeer, rec.UpstreamPrincipal, rec.UpstreamCluster
	} else {
		in.peer, in.principal, in.service = rec.DownstreamPeer, rec.DownstreamPrincipal, rec.Authority
		in.services, in.mtls = rec.ClusterServices, rec.DownstreamMTLS
	}
	return in
}

// matches reports whether rec's inputs are in (inputsOf(rec) equals in),
// without building them.
func (in *buildInputs) matches(rec *telemetry.Record) bool {
	if in.outbound != rec.Outbound || in.code != rec.ResponseCode || in.flags != rec.Flags ||
		!sameString(in.grpcStatus, rec.GRPCStatus) {
		return false
	}
	if rec.Outbound {
		if in.peer != rec.UpstreamPeer || !sameString(in.principal, rec.UpstreamPrincipal) ||
			!sameString(in.service, rec.UpstreamCluster) {
			return false
		}
	} else if in.peer != rec.DownstreamPeer || in.mtls != rec.DownstreamMTLS ||
		!sameString(in.principal, rec.DownstreamPrincipal) || !sameString(in.service, rec.Authority) ||
		!slices.Equal(in.services, rec.ClusterServices) {
		return false
	}
	return sameString(in.protocol, protocol(rec))
}

// sameString is a == b, without a call when both are the same string.
func sameString(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// RecordHTTP records the finished HTTP request rec in the series of the
// labels b builds for it and the custom dimensions of r's configuration of
// rec's side (nothing when that side records no HTTP metric). m, when not
// nil, answers for a request with the inputs or the standard labels of the
// one it holds (else it takes this one's); without custom dimensions only
// (a label set without them has one key whatever the Config, key.go).
func (r *Registry) RecordHTTP(b *Builder, rec *telemetry.Record, m *SeriesMemo) {
	cfg := r.Config(SideOf(rec))
	if cfg.HTTPOff() {
		return
	}
	d, reqBytes, respBytes := rec.Duration, rec.BytesReceived, rec.BytesSent
	if m == nil || len(cfg.Custom) > 0 {
		var l Labels
		b.Build(rec, &l)
		cfg.FillCustom(rec, b.Local(), &l)
		r.RecordRequest(&l, d, reqBytes, respBytes)
		return
	}
	if m.s == nil || m.reg != r || m.b != b || !m.in.matches(rec) {
		var l Labels
		b.Build(rec, &l)
		if m.s == nil || m.reg != r || !sameStd(&m.std, &l.Std) {
			s := lookup(r, r.http, &l, newHTTPSeries)
			if s == nil {
				*m = SeriesMemo{}
				return
			}
			m.reg, m.s, m.std = r, s, l.Std
		}
		m.b, m.in = b, inputsOf(rec)
	}
	m.s.record(d, reqBytes, respBytes)
}

// sameStd reports whether a and b are the same labels. When every string
// of one is the very string of the other (pointer and length), which a
// repeated label set mostly is, one compare of the arrays' string headers
// (400 bytes) answers. Else each label is compared, by its pointer first
// and by its bytes when the pointers differ. (The strings a memo holds
// stay alive, so equal pointers and lengths are equal bytes.)
func sameStd(a, b *[NumLabels]string) bool {
	const n = int(unsafe.Sizeof(*a))
	if string(unsafe.Slice((*byte)(unsafe.Pointer(a)), n)) == string(unsafe.Slice((*byte)(unsafe.Pointer(b)), n)) {
		return true
	}
	for i := range a {
		if !sameString(a[i], b[i]) {
			return false
		}
	}
	return true
}
