package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// egressConfig: reviews and ratings (HTTP, port 9080) and db (TCP, port
// 5432) as services, and a Sidecar giving the client workload a local port
// for reviews and one for db on its own address (the Istio API: egress
// listeners with a port and a bind; without capture they bind).
const egressConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: default}
spec: {address: 127.0.0.1, ports: {http: %d}, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: default}
spec: {address: 127.0.0.1, ports: {http: %d}, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: default}
spec: {address: 127.0.0.1, ports: {tcp: %d}, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    bind: %[4]s
    captureMode: NONE
    hosts: ["./reviews.default.svc.cluster.local"]
  - port: {number: 5432, protocol: TCP, name: tcp}
    bind: %[4]s
    hosts: ["./db.default.svc.cluster.local"]
`

// tcpEcho serves a line-echo protocol: each line comes back prefixed "echo: ".
func tcpEcho(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo: %s\n", sc.Text())
				}
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// startControlPlane runs mastd on config directory dir.
func startControlPlane(t *testing.T, dir string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		xdsAddr := freeAddr(t)
		mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", freeAddr(t), "--ratelimit-addr", freeAddr(t), "--debounce-after", "10ms")
		// A port freeAddr found free may be taken (by another test's
		// outgoing connection) before mastd binds it; mastd then stops at
		// once, naming it, and a new set of ports is tried.
		deadline := time.Now().Add(30 * time.Second)
		stopped := false
		for !stopped && !strings.Contains(mastd.Output(), "mastd serving") && time.Now().Before(deadline) {
			select {
			case <-mastd.done:
				stopped = true
				if attempt >= 3 || !strings.Contains(mastd.Output(), "address already in use") {
					t.Fatalf("mastd stopped before serving")
				}
			case <-time.After(10 * time.Millisecond):
			}
		}
		if strings.Contains(mastd.Output(), "mastd serving") {
			return xdsAddr
		}
		select {
		case <-mastd.done:
			continue // ports taken: try again
		default:
			t.Fatalf("mastd printing mastd serving: still failing after 30s")
		}
	}
}

// TestProxyEgressLocalPorts is the explicit mode for machines without root:
// a workload without capture (INTERCEPTION_MODE NONE) gets local ports from
// its Sidecar's egress listeners, and an unmodified client — net/http with
// no proxy, a plain TCP dial — reaches an HTTP service and a TCP service
// through them. The HTTP port is scoped to its own host: whatever Host the
// client sends, it reaches reviews, never ratings (which the workload
// cannot see at all).
func TestProxyEgressLocalPorts(t *testing.T) {
	reviews, ratings, db := versionServer(t, "reviews"), versionServer(t, "ratings"), tcpEcho(t)
	ip := uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(egressConfig, reviews, ratings, db, ip))
	xdsAddr := startControlPlane(t, dir)
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")

	// No HTTP_PROXY: the transport dials the local port itself.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	get := func(url, host string) (string, error) {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			return "", err
		}
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return string(b), err
	}
	base := "http://" + ip + ":9080"
	eventually(t, 30*time.Second, "reaching reviews through "+base, func() error {
		got, err := get(base+"/reviews/1", "")
		if err == nil && got != "reviews" {
			err = fmt.Errorf("answered by %q", got)
		}
		return err
	})
	for _, host := range []string{"", "reviews:9080", "ratings.default.svc.cluster.local:9080", "anything.example"} {
		t.Run("http host "+host, func(t *testing.T) {
			got, err := get(base+"/", host)
			if err != nil || got != "reviews" {
				t.Errorf("Host %q: got %q, %v; want reviews", host, got, err)
			}
		})
	}

	t.Run("tcp", func(t *testing.T) {
		var c net.Conn
		eventually(t, 30*time.Second, "dialing the db port", func() error {
			var err error
			c, err = net.DialTimeout("tcp", ip+":5432", 5*time.Second)
			return err
		})
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		for _, line := range []string{"hello", "second line"} {
			fmt.Fprintln(c, line)
			got, err := r.ReadString('\n')
			if err != nil || strings.TrimSpace(got) != "echo: "+line {
				t.Fatalf("db answered %q, %v", got, err)
			}
		}
	})

	t.Run("no other local ports", func(t *testing.T) {
		// ratings has no egress listener of its own: nothing listens for it.
		if c, err := net.DialTimeout("tcp", ip+":9081", time.Second); err == nil {
			c.Close()
			t.Error("something listens on " + ip + ":9081")
		}
	})
}

// forwardedConfig: web (HTTP, port 9080) served by a workload whose sidecar
// runs without capture at %[2]s and hands requests to the app at
// 127.0.0.1:%[1]d; a gateway server for web.example.com on port 8080.
const forwardedConfig = webWorkload + `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [web.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com]
  gateways: [edge]
  http:
  - route: [{destination: {host: web.default.svc.cluster.local, port: {number: 9080}}}]
`

// headerServer answers every request with the request's headers as JSON
// (lower-case names, values of repeated fields joined by ",").
func headerServer(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := map[string]string{}
		for k, vs := range r.Header {
			out[strings.ToLower(k)] = strings.Join(vs, ",")
		}
		json.NewEncoder(w).Encode(out)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// TestForwardedHeaders checks what an application behind a sidecar receives
// in x-forwarded-for, x-forwarded-proto, x-envoy-external-address and
// x-request-id, with Envoy's semantics as Istio configures them: the
// gateway is the edge (use_remote_address, xff_num_trusted_hops 0) and
// appends its peer to x-forwarded-for — its own address, as Envoy does, for
// a peer on loopback — and names the peer in x-envoy-external-address,
// overwriting what the client claimed; the sidecar's inbound side
// (use_remote_address false) passes x-forwarded-for on untouched. Neither
// lets a client steer retries with x-envoy-retry-on.
func TestForwardedHeaders(t *testing.T) {
	app := headerServer(t)
	webIP, gatewayIP, clientIP := uniqueLoopback(), uniqueLoopback(), uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(forwardedConfig, app, webIP))
	xdsAddr := startControlPlane(t, dir)
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~web-1.default~default.svc.cluster.local", webIP),
		"--xds-addr", xdsAddr, "--admin-addr", webIP+":15000", "--drain-period", "1s",
		"--labels", "app=web", "--meta", "INTERCEPTION_MODE=NONE")
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("router~%s~ingress-1.istio-system~istio-system.svc.cluster.local", gatewayIP),
		"--xds-addr", xdsAddr, "--admin-addr", gatewayIP+":15000", "--drain-period", "1s",
		"--labels", "istio=ingressgateway", "--meta", "INTERCEPTION_MODE=NONE")

	// The client connects from an address of its own, so the proxies'
	// view of their peer is visible.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}).DialContext}}
	seen := func(url string, hdr map[string]string) (map[string]string, error) {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			return nil, err
		}
		req.Host = "web.example.com"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		var got map[string]string
		return got, json.NewDecoder(resp.Body).Decode(&got)
	}
	spoofed := map[string]string{
		"X-Forwarded-For":          "203.0.113.9",
		"X-Forwarded-Proto":        "https",
		"X-Envoy-External-Address": "6.6.6.6",
		"X-Envoy-Retry-On":         "5xx",
		"X-Request-Id":             "client-chosen-id",
	}
	tests := []struct {
		name string
		url  string
		in   map[string]string
		want map[string]string // "" means absent
	}{
		{
			name: "through the gateway",
			url:  "http://" + gatewayIP + ":8080/headers",
			in:   spoofed,
			want: map[string]string{
				"x-forwarded-for":          "203.0.113.9," + gatewayIP,
				"x-forwarded-proto":        "http",
				"x-envoy-external-address": clientIP,
				"x-envoy-retry-on":         "",
			},
		},
		{
			name: "through the gateway, no x-forwarded-for",
			url:  "http://" + gatewayIP + ":8080/headers",
			want: map[string]string{"x-forwarded-for": gatewayIP, "x-envoy-external-address": clientIP, "x-forwarded-proto": "http"},
		},
		{
			name: "straight to the sidecar",
			url:  "http://" + webIP + ":9080/headers",
			in:   spoofed,
			want: map[string]string{
				"x-forwarded-for":          "203.0.113.9",
				"x-forwarded-proto":        "https",
				"x-envoy-external-address": "6.6.6.6",
				"x-envoy-retry-on":         "",
				"x-request-id":             "client-chosen-id",
			},
		},
		{
			name: "straight to the sidecar, no x-forwarded-for",
			url:  "http://" + webIP + ":9080/headers",
			want: map[string]string{"x-forwarded-for": "", "x-envoy-external-address": "", "x-forwarded-proto": "http"},
		},
	}
	eventually(t, 30*time.Second, "reaching the app through the gateway", func() error {
		_, err := seen(tests[0].url, nil)
		return err
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := seen(tt.url, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if v, ok := got[name]; want == "" && ok || want != "" && v != want {
					t.Errorf("%s = %q, want %q", name, v, want)
				}
			}
			if id := got["x-request-id"]; id == "" || tt.in != nil && strings.Contains(tt.url, ":8080") && id == "client-chosen-id" {
				t.Errorf("x-request-id = %q: an edge request gets an id of its own", id)
			}
		})
	}
}
