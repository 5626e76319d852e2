package e2e

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/xds"
)

// echoServer is a gRPC TestService that answers with its version in SimpleResponse.Hostname.
type echoServer struct {
	testgrpc.UnimplementedTestServiceServer
	version string
}

func (s *echoServer) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: s.version}, nil
}

func startEcho(t *testing.T, version string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, &echoServer{version: version})
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().(*net.TCPAddr).Port
}

const echoService = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: echo
  namespace: default
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 7070, name: grpc, protocol: GRPC}
  workloadSelector:
    labels: {app: echo}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v1, namespace: default}
spec:
  address: 127.0.0.1
  ports: {grpc: %d}
  labels: {app: echo, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-v2, namespace: default}
spec:
  address: 127.0.0.1
  ports: {grpc: %d}
  labels: {app: echo, version: v2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

const echoRouting = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  http:
  - match:
    - headers:
        x-user: {exact: jason}
    route:
    - destination: {host: echo.default.svc.cluster.local, subset: v2}
  - route:
    - destination: {host: echo.default.svc.cluster.local, subset: %s}
      weight: %d
    - destination: {host: echo.default.svc.cluster.local, subset: v2}
      weight: %d
`

// TestProxylessGRPC shows grpc-go's own xDS resolver and balancers following
// Mast's configuration: a header match, a weight split and a live edit.
func TestProxylessGRPC(t *testing.T) {
	v1, v2 := startEcho(t, "v1"), startEcho(t, "v2")
	dir := t.TempDir()
	writeFile(t, dir, "echo.yaml", fmt.Sprintf(echoService, v1, v2))
	writeFile(t, dir, "routing.yaml", fmt.Sprintf(echoRouting, "v1", 80, 20))

	xdsAddr, monAddr := freeAddr(t), freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", monAddr)
	waitLine(t, mastd, "mastd serving", 30*time.Second)

	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": "sidecar~127.0.0.1~client-1.default~default.svc.cluster.local",
           "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default", "LABELS": {"app": "client"}}}
}`, xdsAddr)
	builder, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///echo.default.svc.cluster.local:7070",
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(builder))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)

	call := func(user string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if user != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-user", user)
		}
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		if err != nil {
			return "", err
		}
		return resp.GetHostname(), nil
	}
	count := func(n int, user string) map[string]int {
		t.Helper()
		got := map[string]int{}
		for i := 0; i < n; i++ {
			v, err := call(user)
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			got[v]++
		}
		return got
	}

	t.Run("header match to one subset", func(t *testing.T) {
		if got := count(100, "jason"); got["v2"] != 100 {
			t.Fatalf("x-user: jason: got %v, want all 100 on v2", got)
		}
	})
	t.Run("80/20 weight split", func(t *testing.T) {
		const n = 1000
		got := count(n, "")
		frac := float64(got["v1"]) / n
		if got["v1"]+got["v2"] != n || math.Abs(frac-0.8) > 0.05 {
			t.Fatalf("weights 80/20 over %d calls: got %v (v1 fraction %.3f), want 0.80 ± 0.05", n, got, frac)
		}
	})
	t.Run("subset change applied live", func(t *testing.T) {
		writeFile(t, dir, "routing.yaml", fmt.Sprintf(echoRouting, "v2", 50, 50))
		eventually(t, 20*time.Second, "routing edit to reach the client", func() error {
			if got := count(20, ""); got["v2"] != 20 {
				return fmt.Errorf("got %v", got)
			}
			return nil
		})
		if got := count(200, ""); got["v2"] != 200 {
			t.Fatalf("after the edit: got %v, want all on v2", got)
		}
	})
	t.Run("syncz shows the client with acknowledged versions", func(t *testing.T) {
		checkSyncz(t, monAddr, "sidecar~127.0.0.1~client-1.default~default.svc.cluster.local")
	})
	t.Run("a broken edit keeps the last good routing", func(t *testing.T) {
		writeFile(t, dir, "routing.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: echo, namespace: default}\nspec:\n  hosts: [echo.default.svc.cluster.local]\n  http:\n  - route:\n    - destination: {host: echo.default.svc.cluster.local, subset: v1}\n      wieght: 100\n")
		eventually(t, 10*time.Second, "configz to report the rejected file", func() error {
			var cz struct {
				Store struct {
					Rejected []map[string]any `json:"rejected"`
				} `json:"store"`
			}
			if err := getJSON(context.Background(), "http://"+monAddr+"/debug/configz", &cz); err != nil {
				return err
			}
			s := fmt.Sprint(cz.Store.Rejected)
			if !strings.Contains(s, "routing.yaml") || !strings.Contains(s, "wieght") {
				return fmt.Errorf("rejected files: %s", s)
			}
			return nil
		})
		if got := count(100, ""); got["v2"] != 100 {
			t.Fatalf("after a broken edit: got %v, want the previous routing (all v2)", got)
		}
	})
}
