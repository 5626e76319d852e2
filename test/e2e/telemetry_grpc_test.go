package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// grpcStreamConfig: service chat (gRPC 7070) behind a sidecar at %[1]s
// (workload db-1) forwarding to the application at 127.0.0.1:%[3]d,
// reached over Istio mTLS by a client sidecar at %[2]s through its egress
// port 7070; db's TCP 5432 forwards to the echo application at
// 127.0.0.1:%[4]d. A mesh-wide Telemetry sets reportingInterval to 1 s.
const grpcStreamConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: chat, namespace: default}
spec:
  hosts: [chat.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}, {number: 5432, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: default}
spec: {address: %[1]s, labels: {app: db, version: v7}, serviceAccount: db}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-1, namespace: default}
spec: {address: %[2]s, labels: {app: client, version: v1}, serviceAccount: client}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: db, namespace: default}
spec:
  workloadSelector: {labels: {app: db}}
  ingress:
  - port: {number: 7070, protocol: GRPC, name: grpc}
    defaultEndpoint: 127.0.0.1:%[3]d
  - port: {number: 5432, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:%[4]d
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 7070, protocol: GRPC, name: grpc}
    bind: %[2]s
    hosts: ["./chat.default.svc.cluster.local"]
  - port: {number: 5432, protocol: TCP, name: tcp}
    bind: %[2]s
    hosts: ["./chat.default.svc.cluster.local"]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: chat, namespace: default}
spec:
  host: chat.default.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    reportingInterval: 1s
`

// duplexServer answers every message of a FullDuplexCall with as many
// messages as it has response parameters.
type duplexServer struct {
	testgrpc.UnimplementedTestServiceServer
}

func (duplexServer) FullDuplexCall(s testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		for range req.GetResponseParameters() {
			if err := s.Send(&testgrpc.StreamingOutputCallResponse{}); err != nil {
				return err
			}
		}
	}
}

// sendBatch sends one request message per count, each asking for that many
// response messages, and reads all the responses.
func sendBatch(t *testing.T, st testgrpc.TestService_FullDuplexCallClient, counts ...int) {
	t.Helper()
	want := 0
	for _, n := range counts {
		req := &testgrpc.StreamingOutputCallRequest{}
		for range n {
			req.ResponseParameters = append(req.ResponseParameters, &testgrpc.ResponseParameters{})
		}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
		want += n
	}
	for range want {
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
}

// counterWith is the value of name's series carrying labels (0, false when
// there is none), and an error when several do.
func counterWith(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range labels {
			ok = ok && got[k] == v
		}
		if ok {
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// TestTelemetryGRPCMessagesAndReportingInterval: real mastd (with its CA)
// and two real sidecars; a bidirectional gRPC stream from the client's
// egress port to chat over Istio mTLS. Both proxies count every message
// (istio_request_messages_total, istio_response_messages_total, with
// Istio's label set for them: the peers' workloads, no response code),
// read from their 15090 with Prometheus's parser. The Telemetry's
// reportingInterval (1 s) is honoured: the counts of the still-open stream
// and the bytes of a still-open TCP connection reach Prometheus while they
// are open (Istio's stats filter reports on that timer).
func TestTelemetryGRPCMessagesAndReportingInterval(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, duplexServer{})
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	dbIP, clientIP := uniqueLoopback(), uniqueLoopback()
	startExchangeMesh(t, fmt.Sprintf(grpcStreamConfig, dbIP, clientIP, l.Addr().(*net.TCPAddr).Port, tcpEcho(t)), dbIP, clientIP)

	cc, err := grpc.NewClient(clientIP+":7070", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("chat.default.svc.cluster.local:7070"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var st testgrpc.TestService_FullDuplexCallClient
	eventually(t, 30*time.Second, "a gRPC stream through both sidecars", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := testgrpc.NewTestServiceClient(cc).FullDuplexCall(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{}}}); err != nil {
			return err
		}
		if _, err := s.Recv(); err != nil {
			return err
		}
		s.CloseSend()
		if _, err := s.Recv(); err != io.EOF {
			return fmt.Errorf("end of the warm-up stream: %v", err)
		}
		return nil
	})
	// Count only the measured stream: take the warm-up's counts first.
	base := map[string][2]float64{}
	sides := map[string]map[string]string{
		dbIP:     {"reporter": "destination", "source_workload": "client-1", "source_app": "client", "destination_workload": "db-1", "destination_service": "chat.default.svc.cluster.local"},
		clientIP: {"reporter": "source", "source_workload": "client-1", "destination_workload": "db-1", "destination_app": "db", "destination_version": "v7"},
	}
	counts := func(ip string) ([2]float64, error) {
		fams, err := scrapeStats(ip + ":15090")
		if err != nil {
			return [2]float64{}, err
		}
		rq, ok1 := counterWith(fams, "istio_request_messages_total", sides[ip])
		rs, ok2 := counterWith(fams, "istio_response_messages_total", sides[ip])
		if !ok1 || !ok2 {
			return [2]float64{}, fmt.Errorf("no message series with %v", sides[ip])
		}
		for _, name := range []string{"istio_request_messages_total", "istio_response_messages_total"} {
			for _, m := range fams[name].GetMetric() {
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "response_code", "request_protocol", "grpc_response_status", "response_flags", "connection_security_policy":
						return [2]float64{}, fmt.Errorf("%s carries %s (Istio's message metrics do not)", name, l.GetName())
					}
				}
			}
		}
		return [2]float64{rq, rs}, nil
	}
	for ip := range sides {
		eventually(t, 20*time.Second, ip+"'s warm-up messages", func() error {
			c, err := counts(ip)
			if err == nil && (c[0] < 1 || c[1] < 1) {
				err = fmt.Errorf("warm-up counts %v", c)
			}
			base[ip] = c
			return err
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err = testgrpc.NewTestServiceClient(cc).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Istio's own test (istio/proxy TestStatsGrpcStream): 3 request
	// messages asking for 1+5+7 responses, seen while the stream is open;
	// then 5 more asking for 14, seen when it ends.
	sendBatch(t, st, 1, 5, 7)
	wantCounts := func(what string, rq, rs float64) {
		for ip := range sides {
			eventually(t, 20*time.Second, ip+": "+what, func() error {
				c, err := counts(ip)
				if err != nil {
					return err
				}
				if got := [2]float64{c[0] - base[ip][0], c[1] - base[ip][1]}; got != [2]float64{rq, rs} {
					return fmt.Errorf("request/response messages %v, want [%v %v]", got, rq, rs)
				}
				return nil
			})
		}
	}
	wantCounts("messages of the open stream", 3, 13)
	sendBatch(t, st, 10, 1, 1, 1, 1)
	st.CloseSend()
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
	wantCounts("messages of the finished stream", 8, 27)

	// TCP: the bytes of a connection still open are reported every second.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", clientIP+":5432")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line := "a line of 20 bytes!\n"
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("echo: ")+len(line))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	for ip, labels := range map[string]map[string]string{
		dbIP:     {"reporter": "destination", "source_workload": "client-1", "destination_workload": "db-1"},
		clientIP: {"reporter": "source", "source_workload": "client-1", "destination_workload": "db-1"},
	} {
		eventually(t, 20*time.Second, ip+": the open connection's bytes", func() error {
			fams, err := scrapeStats(ip + ":15090")
			if err != nil {
				return err
			}
			closed, _ := counterWith(fams, "istio_tcp_connections_closed_total", labels)
			rx, _ := counterWith(fams, "istio_tcp_received_bytes_total", labels)
			tx, _ := counterWith(fams, "istio_tcp_sent_bytes_total", labels)
			if closed != 0 || rx != float64(len(line)) || tx != float64(len(buf)) {
				return fmt.Errorf("closed %v, received %v (want %d), sent %v (want %d)", closed, rx, len(line), tx, len(buf))
			}
			return nil
		})
	}
}
