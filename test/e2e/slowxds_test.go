package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/localmesh"
	"github.com/mast-mesh/mast/internal/pilot/ads"
)

const clusterTypeURL = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

// manyServices is n ServiceEntries, so that a CDS response is large
// (hundreds of KiB) against a slow client's 64 KiB flow-control window.
func manyServices(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: filler-%[1]d, namespace: default}
spec:
  hosts: [filler-%[1]d.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
---
`, i)
	}
	return b.String()
}

// slowXDSClient is a raw ADS stream with small flow-control windows that
// subscribes to CDS and then reads one response every interval (never,
// when interval is 0).
type slowXDSClient struct {
	id       string
	last     atomic.Pointer[string] // version of the last response read
	size     atomic.Int64           // bytes of the last response read
	ended    atomic.Pointer[error]
	received atomic.Int64
}

func startSlowXDSClient(t *testing.T, xdsAddr, id string, interval time.Duration) *slowXDSClient {
	t.Helper()
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &slowXDSClient{id: id}
	if err := st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterTypeURL, Node: &corev3.Node{Id: id}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			resp, err := st.Recv()
			if err != nil {
				c.ended.Store(&err)
				return
			}
			v := resp.GetVersionInfo()
			c.last.Store(&v)
			c.size.Store(int64(proto.Size(resp)))
			c.received.Add(1)
			// ACK, so that mastd sends the next version at all.
			st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterTypeURL, VersionInfo: v, ResponseNonce: resp.GetNonce()})
			if interval == 0 {
				<-ctx.Done() // stalled: never read again
				return
			}
			select {
			case <-time.After(interval):
			case <-ctx.Done():
				return
			}
		}
	}()
	return c
}

// heapInuse reads mastd's go_memstats_heap_inuse_bytes.
func heapInuse(monAddr string) (int64, error) {
	resp, err := http.Get("http://" + monAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("no go_memstats_heap_inuse_bytes in /metrics")
}

// TestSlowXDSClients: ten ADS clients that stop reading (small windows,
// large CDS responses) and ten that read one response per second share
// mastd with a real sidecar while the routing is rewritten 25 times at
// 5/s under load. The sidecar must serve without a failure and end on the
// last route (pushes to it are not held up), mastd must disconnect the
// stalled streams (--xds-send-timeout), the slow readers must stay
// connected and end on the last version (pushes merge, nothing queues up),
// and mastd's heap must stay within a bound proportional to the streams.
func TestSlowXDSClients(t *testing.T) {
	const stalledN, slowN, pushes = 10, 10, 25
	cm := chaosMesh(t, "--xds-send-timeout", "3s")
	dir, mastd, get := cm.dir, cm.mastd, cm.get
	writeFile(t, dir, "filler.yaml", manyServices(400))
	eventually(t, 30*time.Second, "routing through the sidecar", func() error { _, err := get(); return err })
	xdsAddr := flagValue(t, mastd, "--xds-addr")
	monAddr := flagValue(t, mastd, "--monitoring-addr")
	base, err := heapInuse(monAddr)
	if err != nil {
		t.Fatal(err)
	}

	// runPushes rewrites the routing 25 times at 5/s under load through the
	// sidecar and returns the load's result and mastd's peak heap in use.
	type result struct {
		sent, failed int64
		first        error
	}
	last := "v1"
	runPushes := func(phase int) (result, int64) {
		stop := make(chan struct{})
		done := make(chan result)
		go func() {
			var r result
			r.sent, r.failed, r.first = load(stop, func() error {
				v, err := get()
				if err == nil && v != "v1" && v != "v2" {
					err = fmt.Errorf("answered by %q", v)
				}
				return err
			})
			done <- r
		}()
		var peak atomic.Int64
		sampleDone := make(chan struct{})
		go func() {
			defer close(sampleDone)
			for {
				if h, err := heapInuse(monAddr); err == nil && h > peak.Load() {
					peak.Store(h)
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		tick := time.NewTicker(200 * time.Millisecond)
		for i := range pushes {
			<-tick.C
			last = []string{"v1", "v2"}[i%2]
			writeFile(t, dir, "routing.yaml", fmt.Sprintf(resilienceRouting, last))
			// A new ServiceEntry too, so that every push changes CDS for everyone.
			writeFile(t, dir, "filler-extra.yaml", strings.ReplaceAll(manyServices(1), "filler-0", fmt.Sprintf("extra-%d-%d", phase, i)))
		}
		tick.Stop()
		eventually(t, 30*time.Second, "the sidecar on the last route, to "+last, func() error {
			v, err := get()
			if err == nil && v != last {
				err = fmt.Errorf("answered by %q, want %q", v, last)
			}
			return err
		})
		close(stop)
		r := <-done
		<-sampleDone
		return r, peak.Load()
	}
	// Control: the same pushes with only the sidecar connected.
	rc, peakControl := runPushes(0)
	var stalled, slow []*slowXDSClient
	for i := range stalledN {
		stalled = append(stalled, startSlowXDSClient(t, xdsAddr, fmt.Sprintf("sidecar~127.0.9.%d~stalled-%d.default~default.svc.cluster.local", i+1, i), 0))
	}
	for i := range slowN {
		slow = append(slow, startSlowXDSClient(t, xdsAddr, fmt.Sprintf("sidecar~127.0.10.%d~slow-%d.default~default.svc.cluster.local", i+1, i), time.Second))
	}
	for _, c := range append(append([]*slowXDSClient{}, stalled...), slow...) {
		eventually(t, 30*time.Second, c.id+" getting CDS", func() error {
			if c.received.Load() == 0 {
				return fmt.Errorf("no response yet")
			}
			return nil
		})
	}
	respSize := slow[0].size.Load()
	r, peak := runPushes(1)
	// Again: a mastd that kept anything per push would grow here.
	r2, peak2 := runPushes(2)

	// Stalled streams are closed by mastd; slow readers stay and catch up.
	eventually(t, 30*time.Second, "mastd closing every stalled stream", func() error {
		status, err := localmesh.Syncz(context.Background(), "http://"+monAddr)
		if err != nil {
			return err
		}
		connected := map[string]bool{}
		for _, p := range status {
			connected[p.ID] = true
		}
		for _, c := range stalled {
			if connected[c.id] {
				return fmt.Errorf("%s still connected", c.id)
			}
		}
		for _, c := range slow {
			if !connected[c.id] {
				return fmt.Errorf("slow reader %s was disconnected", c.id)
			}
		}
		return nil
	})
	if !strings.Contains(mastd.Output(), "send did not complete within 3s") {
		t.Errorf("mastd did not log the send timeout")
	}
	var want string
	for _, p := range mustSyncz(t, monAddr) {
		for _, ty := range p.Types {
			if ty.TypeURL == clusterTypeURL && strings.Contains(p.ID, "client-1") {
				want = ty.VersionSent
			}
		}
	}
	for _, c := range slow {
		eventually(t, 30*time.Second, c.id+" reading the last CDS version", func() error {
			if v := c.last.Load(); v == nil || *v != want {
				return fmt.Errorf("last read %v, want %s", c.last.Load(), want)
			}
			return nil
		})
	}
	// Memory: each stalled or slow stream holds at most a response in
	// flight and one merged push, in its marshaled, gRPC-encoded and
	// HTTP/2-framed copies, plus garbage not yet collected (measured: about
	// 20 responses' worth per client); the bound allows 32. A second round
	// of pushes must not grow the peak: nothing accumulates per push.
	bound := peakControl + 32*int64(stalledN+slowN)*respSize
	t.Logf("%d pushes, control (sidecar only): %d requests, %d failed, mastd heap in use %d MiB before, peak %d MiB", pushes, rc.sent, rc.failed, base>>20, peakControl>>20)
	t.Logf("%d pushes with %d stalled and %d slow xDS clients (CDS response %d KiB): %d requests, %d failed; mastd heap peak %d MiB (bound %d MiB); %d more pushes: %d requests, %d failed, peak %d MiB",
		pushes, stalledN, slowN, respSize>>10, r.sent, r.failed, peak>>20, bound>>20, pushes, r2.sent, r2.failed, peak2>>20)
	for _, x := range []result{rc, r, r2} {
		if x.failed > 0 || x.sent == 0 {
			t.Errorf("%d of %d requests failed or lost; first: %v", x.failed, x.sent, x.first)
		}
	}
	if peak > bound {
		t.Errorf("mastd heap peaked at %d MiB with the slow clients, above the bound of %d MiB", peak>>20, bound>>20)
	}
	if peak2 > peak+16<<20 {
		t.Errorf("mastd heap grew from a peak of %d MiB to %d MiB over %d more pushes", peak>>20, peak2>>20, pushes)
	}
}

func mustSyncz(t *testing.T, monAddr string) []ads.ProxyStatus {
	t.Helper()
	s, err := localmesh.Syncz(context.Background(), "http://"+monAddr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// flagValue returns the value given to a process for flag.
func flagValue(t *testing.T, p *process, flag string) string {
	t.Helper()
	args := p.cmd.Args
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("%s was not given %s", p.name, flag)
	return ""
}
