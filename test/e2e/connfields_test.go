package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// connFieldsConfig: three HTTP backends (%[1]d, %[2]d, %[3]d) behind
// sticky.example.test (a generated cookie with ttl, path and attributes)
// and session.example.test (ttl 0: a session cookie); one connection
// recorder (%[4]d) behind aged.example.test (tcp.maxConnectionDuration) and
// fresh.example.test (no rule); one TCP ticker-echo server (%[5]d) behind
// idle.example.test (tcp.idleTimeout) and capped.example.test
// (tcp.maxConnectionDuration); moved.example.test redirects with
// derivePort. labelprio, remote and noremote have endpoints in three
// localities: a backend answering 503 (%[7]d, r1/z1, the client's own,
// tier silver), b (r1/z2, gold) and c (r2/z1, gold); split.example.test
// has a and a closed port (%[8]d) with local-origin outlier detection.
// The h2 hosts (HTTP2 port 8081) reach one h2c recorder (%[9]d) with a
// stream limit, keepalive, a maximum connection age or nothing; codes and
// nocodes have a and a backend answering 404 (%[10]d), with and without
// outlierDetectionHttpErrorCodes [404]. The client's Sidecar binds the
// ports on %[6]s.
const connFieldsConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sticky, namespace: default}
spec:
  hosts: [sticky.example.test, session.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: %[1]d}}
  - {address: 127.0.0.1, ports: {http: %[2]d}}
  - {address: 127.0.0.1, ports: {http: %[3]d}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: sticky, namespace: default}
spec:
  host: sticky.example.test
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie:
          name: user
          ttl: 60s
          path: /
          attributes: [{name: SameSite, value: Lax}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: session, namespace: default}
spec:
  host: session.example.test
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: sid, ttl: 0s}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: recorder, namespace: default}
spec:
  hosts: [aged.example.test, fresh.example.test, moved.example.test, stats.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[4]d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: aged, namespace: default}
spec:
  host: aged.example.test
  trafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 1s}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: stats, namespace: default}
spec:
  hosts: [stats.example.test]
  http:
  - match: [{uri: {prefix: /x}, statPrefix: stats_x}]
    route: [{destination: {host: stats.example.test}}]
  - route: [{destination: {host: stats.example.test}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: idle, namespace: default}
spec:
  hosts: [idle.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[5]d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: idle, namespace: default}
spec:
  host: idle.example.test
  trafficPolicy: {connectionPool: {tcp: {idleTimeout: 1s}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: capped, namespace: default}
spec:
  hosts: [capped.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 5433, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[5]d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: capped, namespace: default}
spec:
  host: capped.example.test
  trafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 2s}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: moved, namespace: default}
spec:
  hosts: [moved.example.test]
  http: [{redirect: {authority: other.example, derivePort: FROM_REQUEST_PORT}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: prio, namespace: default}
spec:
  hosts: [labelprio.example.test, remote.example.test, noremote.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: %[7]d}, locality: r1/z1, labels: {tier: silver}}
  - {address: 127.0.0.1, ports: {http: %[2]d}, locality: r1/z2, labels: {tier: gold}}
  - {address: 127.0.0.1, ports: {http: %[3]d}, locality: r2/z1, labels: {tier: gold}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: labelprio, namespace: default}
spec:
  host: labelprio.example.test
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1000, interval: 1s}
    loadBalancer: {localityLbSetting: {failoverPriority: [tier, topology.kubernetes.io/region]}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: remote, namespace: default}
spec:
  host: remote.example.test
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1000, interval: 1s}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: noremote, namespace: default}
spec:
  host: noremote.example.test
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1000, interval: 1s}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: remote, namespace: default}
spec:
  hosts: [remote.example.test]
  http:
  - route: [{destination: {host: remote.example.test}}]
    retries: {attempts: 3, retryOn: 5xx, retryRemoteLocalities: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: noremote, namespace: default}
spec:
  hosts: [noremote.example.test]
  http:
  - route: [{destination: {host: noremote.example.test}}]
    retries: {attempts: 3, retryOn: 5xx}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: split, namespace: default}
spec:
  hosts: [split.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: %[1]d}}
  - {address: 127.0.0.1, ports: {http: %[8]d}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: split, namespace: default}
spec:
  host: split.example.test
  trafficPolicy:
    outlierDetection: {splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 1, consecutive5xxErrors: 1000,
      interval: 1s, baseEjectionTime: 10m, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: h2, namespace: default}
spec:
  hosts: [h2streams.example.test, h2plain.example.test, h2ka.example.test, h2aged.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8081, name: http2, protocol: HTTP2}]
  endpoints: [{address: 127.0.0.1, ports: {http2: %[9]d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: h2streams, namespace: default}
spec:
  host: h2streams.example.test
  trafficPolicy: {connectionPool: {http: {maxConcurrentStreams: 1}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: h2ka, namespace: default}
spec:
  host: h2ka.example.test
  trafficPolicy: {connectionPool: {http: {http2KeepAlive: {interval: 1s, timeout: 10s}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: h2aged, namespace: default}
spec:
  host: h2aged.example.test
  trafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 1s}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: codes, namespace: default}
spec:
  hosts: [codes.example.test, nocodes.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: %[1]d}}
  - {address: 127.0.0.1, ports: {http: %[10]d}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: codes, namespace: default}
spec:
  host: codes.example.test
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 10m, maxEjectionPercent: 100,
      outlierDetectionHttpErrorCodes: [404]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nocodes, namespace: default}
spec:
  host: nocodes.example.test
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 10m, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dela, namespace: default}
spec:
  hosts: [dela.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: delb, namespace: default}
spec:
  hosts: [delb.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[2]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: delc, namespace: default}
spec:
  hosts: [delc.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[3]d}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: default}
spec:
  hosts: [dela.example.test]
  http:
  - match: [{uri: {prefix: /x}}]
    delegate: {name: x, namespace: team}
    headers: {response: {set: {x-root: inherited}}}
  - route: [{destination: {host: dela.example.test}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: x, namespace: team}
spec:
  http:
  - match: [{uri: {prefix: /x/b}}]
    route: [{destination: {host: delb.example.test}}]
  - match: [{uri: {prefix: /y}}]
    route: [{destination: {host: delb.example.test}}]
  - route: [{destination: {host: delc.example.test}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 8080, protocol: HTTP, name: http}
    bind: %[6]s
    captureMode: NONE
    hosts: ["./*"]
  - port: {number: 8081, protocol: HTTP2, name: http2}
    bind: %[6]s
    captureMode: NONE
    hosts: ["./*"]
  - port: {number: 5432, protocol: TCP, name: tcp}
    bind: %[6]s
    hosts: ["./idle.example.test"]
  - port: {number: 5433, protocol: TCP, name: tcp2}
    bind: %[6]s
    hosts: ["./capped.example.test"]
`

// tickerEcho serves a TCP protocol that talks both ways: on connect it
// writes "tick N" lines every 300 ms, ten of them, and it echoes every
// line it reads ("echo: LINE").
func tickerEcho(t *testing.T) int {
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
				var mu sync.Mutex
				go func() {
					for i := 1; i <= 10; i++ {
						time.Sleep(300 * time.Millisecond)
						mu.Lock()
						_, err := fmt.Fprintf(c, "tick %d\n", i)
						mu.Unlock()
						if err != nil {
							return
						}
					}
				}()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					mu.Lock()
					fmt.Fprintf(c, "echo: %s\n", sc.Text())
					mu.Unlock()
				}
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// closedPort is a loopback port nothing listens on (connections are refused).
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// failing serves HTTP answering 503 "fail".
func failing(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		io.WriteString(w, "fail")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// missing serves HTTP answering 404 "missing".
func missing(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		io.WriteString(w, "missing")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// warmConfig: warm.example.test (round robin with warmup: a 60 s window,
// aggression 0.1, so a new host stays near the 10% minimum weight for its
// first ~45 s) and nowarm.example.test (round robin) share the endpoints
// %[1]s.
const warmConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: warm, namespace: default}
spec:
  hosts: [warm.example.test, nowarm.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [%[1]s]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: warm, namespace: default}
spec:
  host: warm.example.test
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      warmup: {duration: 60s, aggression: 0.1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nowarm, namespace: default}
spec:
  host: nowarm.example.test
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
`

// TestConnectionFields takes DestinationRule and VirtualService fields
// through real mastd and a real mast-proxy sidecar (r1/z1, tier gold):
//   - redirect.derivePort FROM_REQUEST_PORT keeps the request's port;
//   - localityLbSetting.failoverPriority: endpoints whose labels match the
//     client's (tier, then region) get its traffic, not its own locality;
//   - retries.retryRemoteLocalities: the third attempt leaves the failing
//     local priority (without it, every attempt stays there);
//   - consistentHash.httpCookie with ttl, path and attributes: curl gets
//     Envoy's Set-Cookie (quoted value, Max-Age, Path, attributes, HttpOnly)
//     on its first request, and every request sending the cookie back goes
//     to the same backend; ttl 0s gives a session cookie (no Max-Age);
//   - connectionPool.tcp.idleTimeout on a TCP service: bytes flowing from
//     the server only keep the connection open (Envoy's idle timeout is
//     "no bytes either way"; mast-proxy used to half-close the silent
//     direction), and a connection silent both ways is closed;
//   - connectionPool.tcp.maxConnectionDuration: a busy TCP connection is
//     closed once that old, and upstream HTTP connections are not reused
//     past it (a host without the rule reuses its connection); an HTTP/2
//     upstream connection that old takes no new stream but finishes its
//     open one;
//   - connectionPool.http.maxConcurrentStreams 1: three concurrent
//     requests take three HTTP/2 connections of one stream each (without
//     it, one connection carries all three);
//   - connectionPool.http.http2KeepAlive: the backend sees PINGs on an
//     idle upstream connection;
//   - delegate: the root VirtualService's /x route takes the routes of a
//     delegate in another namespace, narrowed under /x (its /x/b route
//     wins for /x/b, its catch-all serves the rest of /x, its /y route
//     conflicts and is dropped) and inheriting the root's headers;
//   - match.statPrefix: the route's own counters in /stats and
//     /stats/prometheus (vhost.<vh>.route.stats_x.upstream_rq_*);
//   - outlierDetection.outlierDetectionHttpErrorCodes [404]: an endpoint
//     answering 404 is ejected (without the field it never is);
//   - loadBalancer.warmup: an endpoint added to a round robin service
//     whose other endpoint is past the window gets about 10% of the
//     requests at first (without warmup, half).
func TestConnectionFields(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	backend := func(name string) int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		return l.Addr().(*net.TCPAddr).Port
	}
	var connsMu sync.Mutex
	conns := map[string][]string{} // Host -> client address per request
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recorder := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		connsMu.Lock()
		host, _, _ := strings.Cut(r.Host, ":")
		conns[host] = append(conns[host], r.RemoteAddr)
		connsMu.Unlock()
		io.WriteString(w, "recorded")
	})}
	go recorder.Serve(rl)
	t.Cleanup(func() { recorder.Close() })

	h2rec := startH2Recorder(t)
	ip := uniqueLoopback()
	dir := t.TempDir()
	portA, portB := backend("a"), backend("b")
	endpoint := func(port int) string { return fmt.Sprintf("{address: 127.0.0.1, ports: {http: %d}}", port) }
	writeFile(t, dir, "warm.yaml", fmt.Sprintf(warmConfig, endpoint(portA)))
	writeFile(t, dir, "conn.yaml", fmt.Sprintf(connFieldsConfig, portA, portB, backend("c"),
		rl.Addr().(*net.TCPAddr).Port, tickerEcho(t), ip, failing(t), closedPort(t), h2rec.port, missing(t)))
	xdsAddr := startControlPlane(t, dir)
	proxyStart := time.Now()
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client,tier=gold,topology.kubernetes.io/region=r1,topology.kubernetes.io/zone=z1", "--meta", "INTERCEPTION_MODE=NONE")

	jar := filepath.Join(t.TempDir(), "cookies")
	// fetchAny runs curl against host through the bound port and returns
	// the response headers and body.
	fetchAny := func(host string, args ...string) (string, string, error) {
		a := append([]string{"-sS", "--max-time", "10", "-D", "-", "--connect-to", host + ":8080:" + ip + ":8080"}, args...)
		out, err := exec.Command(curl, append(a, "http://"+host+":8080/x")...).CombinedOutput()
		head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
		return head, body, err
	}
	// fetch is fetchAny that wants a 200.
	fetch := func(host string, args ...string) (string, string, error) {
		head, body, err := fetchAny(host, args...)
		if err == nil && !strings.HasPrefix(head, "HTTP/1.1 200") {
			err = fmt.Errorf("answer %q %q", head, body)
		}
		return head, body, err
	}
	// status is the answer's status code and body ("503 fail").
	status := func(host string) string {
		head, body, err := fetchAny(host)
		if err != nil {
			return err.Error()
		}
		code, _, _ := strings.Cut(strings.TrimPrefix(head, "HTTP/1.1 "), " ")
		return code + " " + body
	}
	header := func(head, name string) string {
		for _, l := range strings.Split(head, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	setCookie := func(head string) string { return header(head, "set-cookie") }
	eventually(t, 30*time.Second, "sticky.example.test answers", func() error {
		_, _, err := fetch("session.example.test")
		return err
	})

	t.Run("generated cookie", func(t *testing.T) {
		head, first, err := fetch("sticky.example.test", "-c", jar)
		if err != nil {
			t.Fatal(err)
		}
		want := regexp.MustCompile(`^user="[0-9a-f]{16}"; Max-Age=60; Path=/; SameSite=Lax; HttpOnly$`)
		if sc := setCookie(head); !want.MatchString(sc) {
			t.Fatalf("Set-Cookie %q, want one matching %s", sc, want)
		}
		for i := 0; i < 10; i++ {
			head, body, err := fetch("sticky.example.test", "-b", jar)
			if err != nil || body != first || setCookie(head) != "" {
				t.Fatalf("request %d sending the cookie back: backend %q (first %q), Set-Cookie %q, %v", i, body, first, setCookie(head), err)
			}
		}
		seen := map[string]bool{}
		for i := 0; i < 12; i++ {
			_, body, err := fetch("sticky.example.test", "-b", fmt.Sprintf("user=v%d", i))
			if err != nil {
				t.Fatal(err)
			}
			seen[body] = true
		}
		if len(seen) < 2 {
			t.Errorf("12 different cookie values all reached %v: the cookie is not what is hashed", seen)
		}
	})
	t.Run("session cookie", func(t *testing.T) {
		head, _, err := fetch("session.example.test")
		if sc := setCookie(head); err != nil || !regexp.MustCompile(`^sid="[0-9a-f]{16}"; HttpOnly$`).MatchString(sc) {
			t.Errorf("Set-Cookie %q (%v), want a session cookie without Max-Age", sc, err)
		}
	})

	t.Run("redirect derivePort", func(t *testing.T) {
		head, _, err := fetchAny("moved.example.test")
		if loc := header(head, "location"); err != nil || !strings.HasPrefix(head, "HTTP/1.1 301") || loc != "http://other.example:8080/x" {
			t.Errorf("answer %q (%v), want 301 to http://other.example:8080/x (FROM_REQUEST_PORT)", head, err)
		}
	})
	count := func(host string, n int) map[string]int {
		got := map[string]int{}
		for range n {
			got[status(host)]++
		}
		return got
	}
	t.Run("failoverPriority", func(t *testing.T) {
		// b (gold, r1) is priority 0, c (gold, r2) 1, the client's own
		// locality (silver) 2: the labels win over locality.
		if got := count("labelprio.example.test", 20); got["200 b"] != 20 {
			t.Errorf("answers %v, want all 20 from b (tier and region match)", got)
		}
	})
	t.Run("retryRemoteLocalities", func(t *testing.T) {
		// The client's own locality answers 503 and is never ejected: two
		// attempts go to it (priority 0), the third, with
		// retryRemoteLocalities, to the next priority (Envoy's
		// previous_priorities, update frequency 2, as istiod sets it).
		if got := count("remote.example.test", 20); got["200 b"] != 20 {
			t.Errorf("answers %v, want all 20 retried into r1/z2 (b)", got)
		}
		if got := count("noremote.example.test", 10); got["503 fail"] != 10 {
			t.Errorf("without retryRemoteLocalities: answers %v, want all 10 to stay in the failing locality", got)
		}
	})

	t.Run("outlier splitExternalLocalOriginErrors", func(t *testing.T) {
		// One endpoint refuses connections: a local-origin failure, which
		// ejects it at once (consecutiveLocalOriginFailures 1) while 1000
		// 5xx would be needed; the default retry on connect-failure sends
		// the request to a. mast-proxy used to refuse the whole cluster.
		if got := count("split.example.test", 10); got["200 a"] != 10 {
			t.Errorf("answers %v, want all 10 from a", got)
		}
		resp, err := http.Get("http://" + ip + ":15000/stats/prometheus")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		found := false
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "envoy_cluster_outlier_detection_ejections_active") && strings.Contains(l, "split.example.test") {
				found = true
				if !strings.HasSuffix(l, " 1") {
					t.Errorf("%s: want 1 host ejected", l)
				}
			}
		}
		if !found {
			t.Errorf("no ejections_active sample for split.example.test in the proxy's stats")
		}
	})

	dialTCP := func(port int) (net.Conn, *bufio.Reader) {
		var c net.Conn
		eventually(t, 30*time.Second, "dialing the TCP port", func() error {
			var err error
			c, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", ip, port), 5*time.Second)
			return err
		})
		t.Cleanup(func() { c.Close() })
		// The deadline only bounds a broken proxy; nothing is timed.
		c.SetDeadline(time.Now().Add(60 * time.Second))
		return c, bufio.NewReader(c)
	}
	t.Run("tcp idleTimeout counts both directions", func(t *testing.T) {
		c, r := dialTCP(5432)
		// The client sends nothing while ten ticks arrive over 3 s (idle
		// timeout 1 s): the server's bytes alone keep the connection.
		for i := 1; i <= 10; i++ {
			if line, err := r.ReadString('\n'); err != nil || line != fmt.Sprintf("tick %d\n", i) {
				t.Fatalf("tick %d: got %q, %v", i, line, err)
			}
		}
		fmt.Fprintln(c, "still there")
		if line, err := r.ReadString('\n'); err != nil || line != "echo: still there\n" {
			t.Fatalf("after 3 s of client silence: got %q, %v; want the echo (the upstream half was closed)", line, err)
		}
		// Now silent both ways: the proxy closes the connection.
		if line, err := r.ReadString('\n'); !errors.Is(err, io.EOF) {
			t.Errorf("idle connection: read %q, %v; want it closed", line, err)
		}
	})
	t.Run("tcp maxConnectionDuration", func(t *testing.T) {
		c, r := dialTCP(5433)
		echoes := 0
		for {
			if _, err := fmt.Fprintln(c, "ping"); err != nil {
				break
			}
			line, err := r.ReadString('\n')
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
					t.Fatalf("busy connection ended with %v, want it closed by the proxy", err)
				}
				break
			}
			if line == "echo: ping\n" {
				echoes++
			}
			time.Sleep(100 * time.Millisecond)
		}
		if echoes == 0 {
			t.Error("no echo before the connection closed")
		}
	})
	t.Run("http maxConnectionDuration", func(t *testing.T) {
		for _, host := range []string{"aged.example.test", "fresh.example.test"} {
			for i := 0; i < 2; i++ {
				if i > 0 {
					time.Sleep(1500 * time.Millisecond) // past aged's 1 s
				}
				if _, _, err := fetch(host); err != nil {
					t.Fatal(err)
				}
			}
		}
		connsMu.Lock()
		defer connsMu.Unlock()
		if a := conns["aged.example.test"]; len(a) != 2 || a[0] == a[1] {
			t.Errorf("aged: upstream connections %v, want a new one for the second request (maxConnectionDuration 1s)", a)
		}
		if f := conns["fresh.example.test"]; len(f) != 2 || f[0] != f[1] {
			t.Errorf("fresh: upstream connections %v, want the first one reused", f)
		}
	})

	// fetchH2 asks host on the HTTP2 port (8081) for path with curl
	// (HTTP/1.1 to the sidecar; h2c from the sidecar to the recorder) and
	// returns the body and status ("h2 HTTP/2.0 200").
	fetchH2 := func(host, path string) (string, error) {
		out, err := exec.Command(curl, "-sS", "--max-time", "40", "-w", " %{http_code}", "--connect-to", host+":8081:"+ip+":8081",
			"http://"+host+":8081"+path).CombinedOutput()
		if err == nil && string(out) != "h2 HTTP/2.0 200" {
			err = fmt.Errorf("answer %q", out)
		}
		return string(out), err
	}
	eventually(t, 30*time.Second, "h2plain.example.test answers", func() error {
		_, err := fetchH2("h2plain.example.test", "/")
		return err
	})
	// threeAtOnce sends three concurrent requests that the recorder holds
	// until all three are open at once.
	threeAtOnce := func(host string) {
		errs := make(chan error, 3)
		for range 3 {
			go func() { _, err := fetchH2(host, "/hold3"); errs <- err }()
		}
		for range 3 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	}
	t.Run("http2 maxConcurrentStreams", func(t *testing.T) {
		threeAtOnce("h2streams.example.test")
		conns := h2rec.connsOf("h2streams.example.test")
		for _, c := range conns {
			if c.maxOpen != 1 {
				t.Errorf("a connection carried %d streams at once, want 1 (maxConcurrentStreams 1)", c.maxOpen)
			}
		}
		if len(conns) != 3 {
			t.Errorf("%d upstream connections for three concurrent requests, want 3", len(conns))
		}
		// Without the limit, the three share the one connection.
		threeAtOnce("h2plain.example.test")
		most := 0
		for _, c := range h2rec.connsOf("h2plain.example.test") {
			most = max(most, c.maxOpen)
		}
		if most != 3 {
			t.Errorf("without maxConcurrentStreams: at most %d streams on a connection, want 3", most)
		}
	})
	t.Run("http2KeepAlive", func(t *testing.T) {
		if _, err := fetchH2("h2ka.example.test", "/"); err != nil {
			t.Fatal(err)
		}
		// interval 1s: the idle connection gets PINGs (Go's server
		// acknowledges them, so it stays open).
		eventually(t, 30*time.Second, "PINGs on the h2ka connection", func() error {
			conns := h2rec.connsOf("h2ka.example.test")
			if len(conns) != 1 || conns[0].pings < 3 {
				return fmt.Errorf("connections %+v, want one with at least 3 PINGs", conns)
			}
			return nil
		})
		if _, err := fetchH2("h2ka.example.test", "/"); err != nil || len(h2rec.connsOf("h2ka.example.test")) != 1 {
			t.Errorf("after the PINGs: %v, connections %+v, want the same connection", err, h2rec.connsOf("h2ka.example.test"))
		}
	})
	t.Run("http2 maxConnectionDuration", func(t *testing.T) {
		slow := make(chan error, 1)
		go func() { _, err := fetchH2("h2aged.example.test", "/slow"); slow <- err }()
		eventually(t, 30*time.Second, "the slow request open", func() error {
			if c := h2rec.connsOf("h2aged.example.test"); len(c) != 1 || c[0].open != 1 {
				return fmt.Errorf("connections %+v", c)
			}
			return nil
		})
		time.Sleep(1500 * time.Millisecond) // past maxConnectionDuration 1s
		if _, err := fetchH2("h2aged.example.test", "/"); err != nil {
			t.Fatal(err)
		}
		if c := h2rec.connsOf("h2aged.example.test"); len(c) != 2 {
			t.Errorf("connections %+v, want a second one for the request after the age limit", c)
		}
		h2rec.unblock("h2aged.example.test")
		if err := <-slow; err != nil {
			t.Errorf("the stream open on the aged connection: %v, want it answered (drained, not reset)", err)
		}
	})
	t.Run("outlierDetectionHttpErrorCodes", func(t *testing.T) {
		// Round robin over a and an endpoint answering 404: with 404 an
		// error code, two in a row eject it (consecutive5xxErrors 2).
		count("codes.example.test", 10)
		if got := count("codes.example.test", 10); got["200 a"] != 10 {
			t.Errorf("answers %v, want all 10 from a (the 404 endpoint ejected)", got)
		}
		count("nocodes.example.test", 10)
		if got := count("nocodes.example.test", 10); got["404 missing"] != 5 {
			t.Errorf("without the field: answers %v, want 5 of 10 from the 404 endpoint (404 is no error)", got)
		}
	})
	t.Run("statPrefix", func(t *testing.T) {
		for range 3 {
			if _, _, err := fetch("stats.example.test"); err != nil { // path /x
				t.Fatal(err)
			}
		}
		if out, err := exec.Command(curl, "-sS", "--max-time", "10", "--connect-to", "stats.example.test:8080:"+ip+":8080",
			"http://stats.example.test:8080/other").CombinedOutput(); err != nil || string(out) != "recorded" {
			t.Fatalf("request on the route without statPrefix: %q %v", out, err)
		}
		get := func(path string) string {
			out, err := exec.Command(curl, "-sS", "--max-time", "10", "http://"+ip+":15000"+path).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v %s", path, err, out)
			}
			return string(out)
		}
		stats := get("/stats")
		for _, want := range []string{`(?m)^vhost\.stats\.example\.test:8080\.route\.stats_x\.upstream_rq_total: 3$`,
			`(?m)^vhost\.stats\.example\.test:8080\.route\.stats_x\.upstream_rq_2xx: 3$`} {
			if !regexp.MustCompile(want).MatchString(stats) {
				t.Errorf("/stats has no line matching %s:\n%s", want, grepLines(stats, "vhost."))
			}
		}
		prom := get("/stats/prometheus")
		want := `(?m)^envoy_vhost_route_upstream_rq_total\{envoy_virtual_host="stats\.example\.test:8080",envoy_route="stats_x"\} 3$`
		if !regexp.MustCompile(want).MatchString(prom) {
			t.Errorf("/stats/prometheus has no line matching %s:\n%s", want, grepLines(prom, "vhost_route"))
		}
	})
	t.Run("delegate", func(t *testing.T) {
		for _, tc := range []struct{ path, body, header string }{
			{"/x/b/1", "b", "inherited"}, // the delegate's /x/b route
			{"/x/z", "c", "inherited"},   // the delegate's catch-all, under /x
			{"/y", "a", ""},              // the root's own route: the delegate's /y route conflicts with /x
		} {
			out, err := exec.Command(curl, "-sS", "--max-time", "10", "-D", "-", "--connect-to", "dela.example.test:8080:"+ip+":8080",
				"http://dela.example.test:8080"+tc.path).CombinedOutput()
			head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
			if err != nil || body != tc.body || header(head, "x-root") != tc.header {
				t.Errorf("%s: %q %q (%v), want backend %q and x-root %q", tc.path, head, body, err, tc.body, tc.header)
			}
		}
	})
	t.Run("warmup", func(t *testing.T) {
		// a must be past the 60 s window (it joined when the proxy
		// started) for the new endpoint's weight to differ from it.
		time.Sleep(time.Until(proxyStart.Add(65 * time.Second)))
		writeFile(t, dir, "warm.yaml", fmt.Sprintf(warmConfig, endpoint(portA)+", "+endpoint(portB)))
		// hundred sends n requests over one curl connection and counts
		// the backends that answered.
		hundred := func(host string, n int) map[string]int {
			args := []string{"-sS", "--max-time", "120", "-w", "\n", "--connect-to", host + ":8080:" + ip + ":8080"}
			for range n {
				args = append(args, "http://"+host+":8080/w")
			}
			out, err := exec.Command(curl, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			got := map[string]int{}
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				got[l]++
			}
			return got
		}
		eventually(t, 30*time.Second, "the new endpoint in nowarm.example.test", func() error {
			if got := hundred("nowarm.example.test", 10); got["b"] == 0 {
				return fmt.Errorf("answers %v", got)
			}
			return nil
		})
		warm := hundred("warm.example.test", 100)
		if warm["b"] < 1 || warm["b"] > 25 || warm["a"]+warm["b"] != 100 {
			t.Errorf("warmup: answers %v, want the new endpoint b to get about 10 of 100 (at least 1, at most 25)", warm)
		}
		if got := hundred("nowarm.example.test", 100); got["b"] < 40 {
			t.Errorf("without warmup: answers %v, want about half for b", got)
		}
	})
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
