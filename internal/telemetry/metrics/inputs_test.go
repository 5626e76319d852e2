package metrics

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/telemetry"
)

// Values a record's fields are drawn from: few enough that two records
// often share them, varied enough to reach Build's branches (mesh and
// other cluster names, short and full hosts, ports, IPs, gRPC).
var (
	inputStrings = []string{"", "reviews", "reviews:9080", "ratings.prod", "ratings.prod.svc.cluster.local", "10.0.0.1:80",
		"[::1]:80", "outbound|9080||reviews.default.svc.cluster.local", "outbound|9080|v1|ratings", "inbound|9080||",
		"passthrough", "0", "14", "spiffe://cluster.local/ns/prod/sa/ratings", "HTTP/1.1"}
	inputInts    = []int{0, 200, 404, 503, 700, -1}
	inputHeaders = []headers.List{nil, {{Name: "content-type", Value: "application/grpc"}},
		{{Name: "x-user", Value: "a"}, {Name: "content-type", Value: "application/grpc+proto"}},
		{{Name: "content-type", Value: "text/plain"}}, {{Name: "x-user", Value: "b"}}}
	inputServices = [][]string{nil, {"reviews.default.svc.cluster.local"}, {"ratings.prod.svc.cluster.local", "reviews.default.svc.cluster.local"},
		{"reviews"}, {"ratings", "reviews.default"}}
	inputPeers = append(testPeers, &telemetry.Peer{Namespace: "prod", ServiceAccount: "ratings"}, &telemetry.Peer{})
)

// setRandom sets v (a field of telemetry.Record) to one of the values above
// for its type (the first two only when narrow, so that fields of a record
// often hold the same value: the upstream and downstream peers, the
// cluster and the authority), often in new copies (equal strings, slices
// and peers that are not the same memory). A field of a type it does not
// know fails the test: a new field must be given values here, so that the
// test varies it.
func setRandom(t *testing.T, rnd *rand.Rand, v reflect.Value, name string, narrow bool) {
	pick := func(n int) int {
		if narrow {
			n = 2
		}
		return rnd.IntN(n)
	}
	fresh := rnd.IntN(3) == 0
	switch x := v.Addr().Interface().(type) {
	case *bool:
		*x = rnd.IntN(2) == 0
	case *string:
		*x = inputStrings[pick(len(inputStrings))]
		if fresh {
			*x = strings.Clone(*x)
		}
	case *int:
		*x = inputInts[pick(len(inputInts))]
	case *int64:
		*x = rnd.Int64N(3)
	case *telemetry.Flags:
		*x = telemetry.Flags(pick(8))
	case *time.Time:
		*x = time.Unix(rnd.Int64N(3), 0)
	case *time.Duration:
		*x = time.Duration(rnd.IntN(3))
	case *headers.List:
		*x = inputHeaders[pick(len(inputHeaders))]
		if fresh {
			*x = append(headers.List(nil), *x...)
		}
	case *[]string:
		*x = inputServices[pick(len(inputServices))]
		if fresh {
			*x = append([]string(nil), *x...)
		}
	case **telemetry.Peer:
		*x = inputPeers[pick(len(inputPeers))]
		if *x != nil && fresh {
			*x = clonePeer(*x)
		}
	default:
		t.Fatalf("Record.%s: the test does not know how to vary a %s", name, v.Type())
	}
}

// Records with the same build inputs get the same standard labels, over
// random pairs of records that differ in one or two fields chosen among
// all of telemetry.Record's (reflection): a field Build reads that the
// inputs leave out makes two records with different labels look the same.
func TestBuildInputsComplete(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 19))
	b := NewBuilder(Local{Peer: reviews, Principal: "spiffe://cluster.local/ns/default/sa/reviews"})
	typ := reflect.TypeFor[telemetry.Record]()
	same, differ := 0, 0
	for range 40000 {
		var x, y telemetry.Record
		vx, vy := reflect.ValueOf(&x).Elem(), reflect.ValueOf(&y).Elem()
		narrow := rnd.IntN(2) == 0
		for i := range typ.NumField() {
			setRandom(t, rnd, vx.Field(i), typ.Field(i).Name, narrow)
		}
		y = x
		changed := ""
		for range 1 + rnd.IntN(2) {
			i := rnd.IntN(typ.NumField())
			setRandom(t, rnd, vy.Field(i), typ.Field(i).Name, narrow)
			changed += " " + typ.Field(i).Name
		}
		var lx, ly Labels
		b.Build(&x, &lx)
		b.Build(&y, &ly)
		ix := inputsOf(&x)
		if !ix.matches(&y) {
			continue
		}
		same++
		if lx.Std != ly.Std {
			t.Fatalf("changed%s: same inputs, different labels\n%q\n%q", changed, lx.Std, ly.Std)
		}
		if !reflect.DeepEqual(x, y) {
			differ++
		}
	}
	// The pairs must often differ in fields Build does not read (or reads
	// on the other side only) for the inputs to be shown to leave them out.
	if same < 20000 || differ < 10000 {
		t.Fatalf("only %d pairs with the same inputs, %d of them different records", same, differ)
	}
}
