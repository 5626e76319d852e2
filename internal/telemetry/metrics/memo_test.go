package metrics

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/telemetry"
)

// clonePeer is p with every string a fresh copy: equal labels whose
// strings are not the same (a peer decoded again after the cache evicted
// it).
func clonePeer(p *telemetry.Peer) *telemetry.Peer {
	return &telemetry.Peer{Name: strings.Clone(p.Name), Workload: strings.Clone(p.Workload), Namespace: strings.Clone(p.Namespace),
		Cluster: strings.Clone(p.Cluster), App: strings.Clone(p.App), Version: strings.Clone(p.Version),
		CanonicalService: strings.Clone(p.CanonicalService), CanonicalRevision: strings.Clone(p.CanonicalRevision)}
}

// memoRun drives the same random requests through RecordRequest (old) and
// RecordHTTP with a few memos, as connections keep them, mostly
// repeating a connection's last labels (memo), and returns both
// expositions.
func memoRun(t *testing.T, seed uint64, maxSeries int) (old, memo []byte) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, 7))
	regOld, regNew := New(maxSeries), New(maxSeries)
	regOther := New(maxSeries) // a second registry the memos also record to
	b := NewBuilder(Local{Peer: reviews, Principal: "spiffe://cluster.local/ns/default/sa/reviews"})
	custom := &Config{Custom: []Dimension{{Name: "user", Value: mustAttr(t, "request.headers['x-user']")}}}
	custom.Custom[0].In[RequestCount] = true
	memos := make([]SeriesMemo, 3)
	last := make([]telemetry.Record, len(memos))
	for i := range 10000 {
		if i%2500 == 1250 { // custom dimensions for a while: the memo stands aside
			regOld.SetSideConfig(Side(i/2500%2), custom)
			regNew.SetSideConfig(Side(i/2500%2), custom)
		} else if i%2500 == 2000 {
			regOld.SetConfig(nil)
			regNew.SetConfig(nil)
		}
		c := rnd.IntN(len(memos)) // the connection
		rec := last[c]
		if rnd.IntN(4) == 0 || i < len(memos) {
			rec = randomRecord(rnd)
		} else if rnd.IntN(3) == 0 { // the same standard labels, maybe another custom one
			rec.RequestHeaders = headers.List{{Name: "x-user", Value: []string{"jason", "bob"}[rnd.IntN(2)]}}
		}
		// Equal header values in new strings, as each request's head.
		rec.Authority, rec.GRPCStatus = strings.Clone(rec.Authority), strings.Clone(rec.GRPCStatus)
		rec.Duration = time.Duration(rnd.IntN(int(2 * time.Second)))
		rec.BytesReceived, rec.BytesSent = int64(rnd.IntN(1<<20)), int64(rnd.IntN(1<<20))
		last[c] = rec
		m := &memos[c]
		if rnd.IntN(50) == 0 {
			m = nil
		}
		for _, reg := range []*Registry{regOld, regNew, regOther} {
			if reg == regOther && rnd.IntN(100) != 0 {
				continue
			}
			if reg != regOld {
				reg.RecordHTTP(b, &rec, m)
				continue
			}
			var l Labels
			b.Build(&rec, &l)
			reg.Config(SideOf(&rec)).FillCustom(&rec, b.Local(), &l)
			reg.RecordRequest(&l, rec.Duration, rec.BytesReceived, rec.BytesSent)
		}
	}
	// Written in both shapes: without custom dimensions, and with them
	// (series recorded without them show them unknown).
	var wo, wn bytes.Buffer
	for _, cfg := range []*Config{nil, custom} {
		regOld.SetConfig(cfg)
		regNew.SetConfig(cfg)
		if err := regOld.Write(&wo); err != nil {
			t.Fatal(err)
		}
		if err := regNew.Write(&wn); err != nil {
			t.Fatal(err)
		}
	}
	return wo.Bytes(), wn.Bytes()
}

var testPeers = []*telemetry.Peer{&productpage, &reviews, {Workload: "ratings-v1", Namespace: "prod", App: "ratings", Version: "v1"}, nil}

func randomRecord(rnd *rand.Rand) telemetry.Record {
	p := testPeers[rnd.IntN(len(testPeers))]
	if p != nil && rnd.IntN(4) == 0 {
		p = clonePeer(p)
	}
	pick := func(s ...string) string { return s[rnd.IntN(len(s))] }
	rec := telemetry.Record{
		Outbound: rnd.IntN(2) == 0, ResponseCode: []int{200, 200, 404, 503, 0, 700}[rnd.IntN(6)],
		GRPCStatus: pick("", "", "0", "14"), Authority: pick("reviews:9080", "ratings.prod", "10.0.0.1:80"),
		UpstreamCluster: pick("outbound|9080||reviews.default.svc.cluster.local", "outbound|9080|v1|ratings", "inbound|9080||", "passthrough"),
		UpstreamPeer:    p, DownstreamPeer: p, DownstreamMTLS: rnd.IntN(2) == 0, Flags: telemetry.Flags(rnd.IntN(4)),
	}
	if rnd.IntN(3) == 0 {
		rec.UpstreamPrincipal = "spiffe://cluster.local/ns/prod/sa/ratings"
		rec.DownstreamPrincipal = strings.Clone(rec.UpstreamPrincipal)
	}
	if u := pick("", "jason", "bob"); u != "" {
		rec.RequestHeaders = headers.List{{Name: "x-user", Value: u}}
	}
	if rnd.IntN(2) == 0 {
		rec.ClusterServices = []string{"reviews.default.svc.cluster.local"}
	}
	return rec
}

// RecordHTTP writes the very exposition RecordRequest does, over
// many label sets (equal labels in the same or in different strings,
// custom dimensions on and off, memos shared between registries, the
// series cap), byte for byte.
func TestSeriesMemoSameExposition(t *testing.T) {
	for seed := range uint64(4) {
		maxSeries := 0
		if seed%3 == 2 {
			maxSeries = 40 // the cap turns label sets away
		}
		old, memo := memoRun(t, seed, maxSeries)
		if !bytes.Equal(old, memo) {
			t.Fatalf("seed %d: expositions differ (%d vs %d bytes)", seed, len(old), len(memo))
		}
		if len(old) < 100000 {
			t.Fatalf("seed %d: only %d bytes of exposition", seed, len(old))
		}
	}
}

func TestSeriesMemoDoesNotAllocate(t *testing.T) {
	reg := New(0)
	b := NewBuilder(Local{Peer: reviews})
	rec := telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage}
	var m SeriesMemo
	reg.RecordHTTP(b, &rec, &m)
	if n := testing.AllocsPerRun(100, func() {
		rec.ResponseCode = 200 + rec.ResponseCode%2 // memo by inputs, then by labels
		reg.RecordHTTP(b, &rec, &m)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// BenchmarkRecordMemo is BenchmarkRecord through a memo.
func BenchmarkRecordMemo(b *testing.B) {
	reg := New(0)
	bl := NewBuilder(Local{Peer: reviews})
	rec := telemetry.Record{Protocol: "HTTP/1.1", ResponseCode: 200, Authority: "reviews:9080", DownstreamPeer: &productpage}
	rec.Duration, rec.BytesReceived, rec.BytesSent = time.Millisecond, 10, 10
	var m SeriesMemo
	b.ReportAllocs()
	for b.Loop() {
		reg.RecordHTTP(bl, &rec, &m)
	}
}
