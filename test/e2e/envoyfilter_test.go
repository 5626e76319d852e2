package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envoyFilterMesh: web.example.test (%[1]d answers "web"), slow.example.test
// (%[2]d holds each request until released) and fault.example.test (web
// again, behind a VirtualService aborting every request with 503). Two
// workloads without capture, client (app=client, ports bound on %[3]s) and
// other (app=other, on %[4]s).
const envoyFilterMesh = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.test, fault.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: slow, namespace: default}
spec:
  hosts: [slow.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[2]d}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fault, namespace: default}
spec:
  hosts: [fault.example.test]
  http: [{fault: {abort: {httpStatus: 503, percentage: {value: 100}}}, route: [{destination: {host: fault.example.test}}]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress: [{port: {number: 8080, protocol: HTTP, name: http}, bind: %[3]s, captureMode: NONE, hosts: ["./*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: other, namespace: default}
spec:
  workloadSelector: {labels: {app: other}}
  egress: [{port: {number: 8080, protocol: HTTP, name: http}, bind: %[4]s, captureMode: NONE, hosts: ["./*"]}]
`

// The EnvoyFilters, applied one after the other.
const (
	// efHeader: a VIRTUAL_HOST MERGE adding a response header, for the client workload only.
	efHeader = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: add-header, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  configPatches:
  - applyTo: VIRTUAL_HOST
    match:
      context: SIDECAR_OUTBOUND
      routeConfiguration: {vhost: {name: "web.example.test:8080"}}
    patch:
      operation: MERGE
      value:
        response_headers_to_add: [{header: {key: x-envoyfilter, value: vhost}}]
  - applyTo: HTTP_ROUTE
    match:
      context: SIDECAR_OUTBOUND
      routeConfiguration: {vhost: {name: "web.example.test:8080", route: {action: ROUTE}}}
    patch:
      operation: MERGE
      value:
        response_headers_to_add: [{header: {key: x-envoyfilter-route, value: route}}]
  - applyTo: CLUSTER
    match: {cluster: {service: nothing.example.test}}
    patch: {operation: MERGE, value: {connect_timeout: 1s}}
`
	// efNoFault: mesh-wide (root namespace), REMOVE the fault filter.
	efNoFault = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: no-fault, namespace: istio-system}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.fault}}}}
    patch: {operation: REMOVE}
`
	// efBreaker: a CLUSTER MERGE of circuit breaker thresholds (one request at a time).
	efBreaker = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: breaker, namespace: default}
spec:
  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND, cluster: {service: slow.example.test, portNumber: 8080}}
    patch:
      operation: MERGE
      value: {circuit_breakers: {thresholds: [{max_requests: 1}]}}
`
	// efRateLimit: INSERT_BEFORE the router, Envoy's local rate limit filter
	// (one token an hour), for the other workload only.
	efRateLimit = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ratelimit, namespace: default}
spec:
  workloadSelector: {labels: {app: other}}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: http_local_rate_limiter
          token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s}
          filter_enabled: {runtime_key: local_rate_limit_enabled, default_value: {numerator: 100, denominator: HUNDRED}}
          filter_enforced: {runtime_key: local_rate_limit_enforced, default_value: {numerator: 100, denominator: HUNDRED}}
`
	// efLua: a filter mast-proxy does not run, for the client workload.
	efLua = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          default_source_code: {inline_string: "function envoy_on_request(h) end"}
`
)

// TestEnvoyFilter takes EnvoyFilters in Istio YAML through real mastd and
// mast-proxy processes and checks their effect with curl: a VIRTUAL_HOST
// and an HTTP_ROUTE MERGE add response headers, for the selected workload
// only; a mesh-wide REMOVE of the fault filter ends a VirtualService's
// aborts; a CLUSTER MERGE of circuit breaker thresholds refuses a second
// concurrent request; an INSERT_BEFORE of the local rate limit filter
// limits one workload; a filter mast-proxy does not run (Lua) is NACKed by
// name, shown by mast proxy-status, and the proxy keeps serving its last
// good configuration; a patch matching nothing is logged by mastd.
func TestEnvoyFilter(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	webL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "web") })}
	go web.Serve(webL)
	t.Cleanup(func() { web.Close() })
	arrived, release := make(chan struct{}, 16), make(chan struct{})
	slowL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "slow")
	})}
	go slow.Serve(slowL)
	t.Cleanup(func() { slow.Close() })

	ipClient, ipOther := uniqueLoopback(), uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "mesh.yaml", fmt.Sprintf(envoyFilterMesh, webL.Addr().(*net.TCPAddr).Port, slowL.Addr().(*net.TCPAddr).Port, ipClient, ipOther))
	xdsAddr, monAddr := freeAddr(t), freeAddr(t)
	mastd := start(t, "mastd", "--config", dir, "--xds-addr", xdsAddr, "--monitoring-addr", monAddr, "--ratelimit-addr", freeAddr(t), "--debounce-after", "10ms")
	waitLine(t, mastd, "mastd serving", 30*time.Second)
	for _, w := range []struct{ name, ip, app string }{{"client-1", ipClient, "client"}, {"other-1", ipOther, "other"}} {
		start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~%s.default~default.svc.cluster.local", w.ip, w.name),
			"--xds-addr", xdsAddr, "--admin-addr", w.ip+":15000", "--drain-period", "1s",
			"--labels", "app="+w.app, "--meta", "INTERCEPTION_MODE=NONE")
	}

	// get runs curl against host through the workload's bound port and
	// returns the status code, response headers (lower-case names) and body.
	get := func(ip, host, path string) (int, http.Header, string) {
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "-D", "-", "--connect-to", host+":8080:"+ip+":8080",
			"http://"+host+":8080"+path).CombinedOutput()
		if err != nil {
			return 0, nil, fmt.Sprintf("%v: %s", err, out)
		}
		head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
		lines := strings.Split(head, "\n")
		code := 0
		fmt.Sscanf(lines[0], "HTTP/1.1 %d", &code)
		h := http.Header{}
		for _, l := range lines[1:] {
			if k, v, ok := strings.Cut(l, ":"); ok {
				h.Add(k, strings.TrimSpace(v))
			}
		}
		return code, h, body
	}
	want := func(ip, host, path string, code int, check func(http.Header) error) func() error {
		return func() error {
			c, h, body := get(ip, host, path)
			if c != code {
				return fmt.Errorf("%s via %s: %d %q, want %d", host, ip, c, body, code)
			}
			if check != nil {
				return check(h)
			}
			return nil
		}
	}
	header := func(name, value string) func(http.Header) error {
		return func(h http.Header) error {
			if got := h.Get(name); got != value {
				return fmt.Errorf("%s: %q, want %q", name, got, value)
			}
			return nil
		}
	}
	apply := func(name, yaml string) { writeFile(t, dir, name, yaml) }
	proxyStatus := func() string {
		out, _ := exec.Command(filepath.Join(binDir, "mast"), "proxy-status", "--debug-address", monAddr).CombinedOutput()
		return string(out)
	}

	for _, ip := range []string{ipClient, ipOther} {
		eventually(t, 30*time.Second, "web answers without the header via "+ip, want(ip, "web.example.test", "/", 200, header("x-envoyfilter", "")))
		eventually(t, 10*time.Second, "the fault aborts via "+ip, want(ip, "fault.example.test", "/", 503, nil))
	}

	t.Run("VIRTUAL_HOST and HTTP_ROUTE MERGE for the selected workload only", func(t *testing.T) {
		apply("ef-header.yaml", efHeader)
		eventually(t, 30*time.Second, "the client gets both headers", want(ipClient, "web.example.test", "/", 200, func(h http.Header) error {
			if err := header("x-envoyfilter", "vhost")(h); err != nil {
				return err
			}
			return header("x-envoyfilter-route", "route")(h)
		}))
		// The same push reached the other workload: a later change shows it has it.
		apply("ef-nofault.yaml", efNoFault)
		eventually(t, 30*time.Second, "the other workload got the push", want(ipOther, "fault.example.test", "/", 200, nil))
		if err := want(ipOther, "web.example.test", "/", 200, header("x-envoyfilter", ""))(); err != nil {
			t.Fatal(err)
		}
		if err := want(ipClient, "slow.example.test", "/", 200, header("x-envoyfilter", ""))(); err != nil {
			t.Fatal(err) // another virtual host
		}
	})
	t.Run("a patch that matches nothing is logged", func(t *testing.T) {
		eventually(t, 10*time.Second, "mastd's warning", func() error {
			out := mastd.Output()
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "EnvoyFilter patch matched nothing") && strings.Contains(l, "default/add-header") &&
					strings.Contains(l, "patch=2") && strings.Contains(l, "client-1") {
					return nil
				}
			}
			return fmt.Errorf("no warning naming default/add-header patch 2 in mastd's log")
		})
	})
	t.Run("mesh-wide REMOVE of the fault filter", func(t *testing.T) {
		eventually(t, 30*time.Second, "no abort via the client", want(ipClient, "fault.example.test", "/", 200, nil))
	})
	t.Run("CLUSTER MERGE of circuit breaker thresholds", func(t *testing.T) {
		// Before: two requests at once reach the backend.
		held := make(chan int, 2)
		go func() { c, _, _ := get(ipClient, "slow.example.test", "/hold"); held <- c }()
		<-arrived
		go func() { c, _, _ := get(ipClient, "slow.example.test", "/hold"); held <- c }()
		<-arrived
		release <- struct{}{}
		release <- struct{}{}
		if a, b := <-held, <-held; a != 200 || b != 200 {
			t.Fatalf("before the patch: %d and %d, want 200 and 200", a, b)
		}
		apply("ef-breaker.yaml", efBreaker)
		eventually(t, 30*time.Second, "a second concurrent request is refused", func() error {
			go func() { c, _, _ := get(ipClient, "slow.example.test", "/hold"); held <- c }()
			<-arrived
			defer func() { release <- struct{}{}; <-held }()
			c, h, body := get(ipClient, "slow.example.test", "/")
			if c != 503 || h.Get("x-envoy-overloaded") != "true" {
				return fmt.Errorf("second request: %d %q %v, want 503 overloaded", c, body, h)
			}
			return nil
		})
	})
	t.Run("INSERT_BEFORE the router: local rate limit for one workload", func(t *testing.T) {
		apply("ef-ratelimit.yaml", efRateLimit)
		eventually(t, 30*time.Second, "the other workload is limited", want(ipOther, "web.example.test", "/", 429, nil))
		for i := 0; i < 3; i++ {
			if err := want(ipClient, "web.example.test", "/", 200, nil)(); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("a filter mast-proxy does not run is NACKed, named, and the last good config serves", func(t *testing.T) {
		apply("ef-lua.yaml", efLua)
		eventually(t, 30*time.Second, "proxy-status shows the NACK", func() error {
			out := proxyStatus()
			if !strings.Contains(out, "NACK") || !strings.Contains(out, "envoy.filters.http.lua") {
				return fmt.Errorf("proxy-status:\n%s", out)
			}
			return nil
		})
		for i := 0; i < 3; i++ {
			if err := want(ipClient, "web.example.test", "/", 200, header("x-envoyfilter", "vhost"))(); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Remove(filepath.Join(dir, "ef-lua.yaml")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the NACK clears", func() error {
			if out := proxyStatus(); strings.Contains(out, "envoy.filters.http.lua") {
				return fmt.Errorf("proxy-status:\n%s", out)
			}
			return nil
		})
	})
}
