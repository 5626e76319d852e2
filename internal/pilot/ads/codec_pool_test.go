package ads

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// poisonPool is a mem.BufferPool that reuses what it is given at once,
// after overwriting it, and counts: a buffer used after it went back shows
// as 0xee bytes or as another response's.
type poisonPool struct {
	mu       sync.Mutex
	free     []*[]byte
	out      map[*[]byte]bool // taken and not yet returned
	gets     int
	puts     int
	problems []string
}

func newPoisonPool() *poisonPool { return &poisonPool{out: map[*[]byte]bool{}} }

func (p *poisonPool) Get(n int) *[]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets++
	for i, b := range p.free {
		if cap(*b) >= n {
			p.free = append(p.free[:i], p.free[i+1:]...)
			*b = (*b)[:n]
			p.out[b] = true
			return b
		}
	}
	b := make([]byte, n, n+n/2)
	p.out[&b] = true
	return &b
}

func (p *poisonPool) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.puts++
	if !p.out[b] {
		p.problems = append(p.problems, "put of a buffer not taken (or put twice)")
		return
	}
	delete(p.out, b)
	full := (*b)[:cap(*b)]
	for i := range full {
		full[i] = 0xee
	}
	p.free = append(p.free, b)
}

func (p *poisonPool) check(t *testing.T, outstanding int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.problems) > 0 {
		t.Fatal(p.problems[0])
	}
	if len(p.out) != outstanding {
		t.Fatalf("%d head buffers not returned, want %d (%d taken, %d returned)", len(p.out), outstanding, p.gets, p.puts)
	}
}

// randomResponse is a response of resources inlined in the head (under
// inlineBelow) and referenced (above), so that the head is cut in several
// parts; every sixth has a resource the codec marshals whole, every fifth
// names too long for the head's first array.
func randomResponse(rng *rand.Rand, i int) proto.Message {
	sizes := []int{0, 3, 500, 1023, 1024, 5000}
	if i%2 == 0 {
		m := &discoveryv3.DiscoveryResponse{VersionInfo: strconv.Itoa(i), TypeUrl: EndpointType, Nonce: strconv.Itoa(i)}
		for range 1 + rng.IntN(6) {
			m.Resources = append(m.Resources, codecAny(EndpointType, sizes[rng.IntN(len(sizes))]))
		}
		return m
	}
	m := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: strconv.Itoa(i), TypeUrl: VirtualHostType, Nonce: strconv.Itoa(i)}
	for j := range 1 + rng.IntN(6) {
		r := &discoveryv3.Resource{Name: "vh" + strconv.Itoa(j), Version: "1", Resource: codecAny(VirtualHostType, sizes[rng.IntN(len(sizes))])}
		if i%6 == 1 && j == 0 {
			r.Aliases = []string{"alias"}
		}
		if i%5 == 0 {
			r.Name = strings.Repeat("n", 400) // beyond headSize's room: the head regrows
		}
		m.Resources = append(m.Resources, r)
	}
	return m
}

// TestCodecHeadPooled: with a pool, the codec's buffers are still exactly
// proto.Marshal's bytes; the head array goes back to the pool once, when
// the last of its parts is freed (not before: the response's bytes are
// intact until then), and no head is kept from the pool.
func TestCodecHeadPooled(t *testing.T) {
	pool := newPoisonPool()
	c := newCodec(pool)
	rng := rand.New(rand.NewPCG(14, 1))
	for i := range 3000 {
		m := randomResponse(rng, i)
		want, err := deterministic.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Marshal(m)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		// The test takes its own reference to each part and frees the
		// codec's (as gRPC does once written): a head returned to the
		// pool early would now read as 0xee.
		got.Ref()
		got.Free()
		if b := got.Materialize(); !bytes.Equal(b, want) {
			t.Fatalf("message %d: bytes differ from proto.Marshal's", i)
		}
		got.Free()
		pool.check(t, 0)
	}
	if pool.gets == 0 {
		t.Fatal("no head came from the pool")
	}
}

// TestCodecHeadPooledPartsShareOwner: the parts of one head are freed one
// by one; the array goes back only with the last.
func TestCodecHeadPooledPartsShareOwner(t *testing.T) {
	pool := newPoisonPool()
	m := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "1", TypeUrl: VirtualHostType, Nonce: "1", Resources: []*discoveryv3.Resource{
		{Name: "a", Version: "1", Resource: codecAny(VirtualHostType, 900)},
		{Name: "b", Version: "1", Resource: codecAny(VirtualHostType, 4000)},
		{Name: "c", Version: "1", Resource: codecAny(VirtualHostType, 900)},
		{Name: "d", Version: "1", Resource: codecAny(VirtualHostType, 4000)},
		{Name: "e", Version: "1", Resource: codecAny(VirtualHostType, 10)},
	}}
	got, err := newCodec(pool).Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || pool.gets != 1 {
		t.Fatalf("%d parts from %d pooled heads, want 5 from 1", len(got), pool.gets)
	}
	for _, b := range got {
		pool.check(t, 1)
		b.Free()
	}
	pool.check(t, 0)
}

// TestCodecHeadPooledOverGRPC: responses written by a gRPC server with the
// codec, back to back so that loopy writes while later ones are marshaled
// into reused heads, arrive exactly as sent (run with -race).
func TestCodecHeadPooledOverGRPC(t *testing.T) {
	pool := newPoisonPool()
	const n = 400
	msgs := make([]proto.Message, n)
	rng := rand.New(rand.NewPCG(14, 2))
	for i := range msgs {
		msgs[i] = randomResponse(rng, 2*i+1) // odd: a DeltaDiscoveryResponse
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(newCodec(pool)), grpc.UnknownServiceHandler(func(_ any, s grpc.ServerStream) error {
		for _, m := range msgs {
			if err := s.SendMsg(m); err != nil {
				return err
			}
		}
		return nil
	}))
	go g.Serve(lis)
	defer g.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for range 3 {
		s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range msgs {
			got, err := s.Recv()
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("response %d arrived changed", i)
			}
		}
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.problems) > 0 || pool.gets == 0 {
		t.Fatalf("pool: %d heads taken, problems %v", pool.gets, pool.problems)
	}
}

var _ mem.BufferPool = (*poisonPool)(nil)
