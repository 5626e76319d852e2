package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sidecarIngressConfig: the server workload's Sidecar binds its ingress
// ports on %[1]s (captureMode NONE, or DEFAULT on a proxy without capture)
// and forwards to the applications on 127.0.0.1: %[2]d answers at once,
// %[3]d holds each request until the test lets it go. Its certificate
// files are in %[4]s; %[6]d is a TCP line echo. The client's Sidecar sends unknown hosts to the
// egress proxy egress.example.test (%[5]d, a recorder); the locked
// client's allows registry services only.
const sidecarIngressConfig = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: server, namespace: default}
spec:
  workloadSelector: {labels: {app: server}}
  inboundConnectionPool: {http: {http2MaxRequests: 1}}
  ingress:
  - {port: {number: 8080, protocol: HTTP, name: http}, bind: %[1]s, captureMode: NONE, defaultEndpoint: "127.0.0.1:%[2]d"}
  - {port: {number: 8081, protocol: HTTP, name: http-default-pool}, bind: %[1]s, captureMode: NONE, defaultEndpoint: "127.0.0.1:%[3]d"}
  - port: {number: 8082, protocol: HTTP, name: http-own-pool}
    bind: %[1]s
    defaultEndpoint: "127.0.0.1:%[3]d"
    connectionPool: {http: {http2MaxRequests: 2}}
  - port: {number: 8443, protocol: HTTPS, name: https}
    bind: %[1]s
    defaultEndpoint: "127.0.0.1:%[2]d"
    tls: {mode: SIMPLE, serverCertificate: %[4]s/server.pem, privateKey: %[4]s/server-key.pem}
  - port: {number: 8444, protocol: HTTPS, name: https-mutual}
    bind: %[1]s
    defaultEndpoint: "127.0.0.1:%[2]d"
    tls: {mode: MUTUAL, serverCertificate: %[4]s/server.pem, privateKey: %[4]s/server-key.pem, caCertificates: %[4]s/ca.pem}
  - port: {number: 8445, protocol: TLS, name: tls-tcp}
    bind: %[1]s
    defaultEndpoint: "127.0.0.1:%[6]d"
    tls: {mode: SIMPLE, serverCertificate: %[4]s/server.pem, privateKey: %[4]s/server-key.pem}
  - {port: {number: 8085, protocol: HTTP, name: http-captured}, bind: %[1]s, captureMode: IPTABLES, defaultEndpoint: "127.0.0.1:%[2]d"}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egress-proxy, namespace: default}
spec:
  hosts: [egress.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 3128, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %[5]d}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress: [{hosts: ["./egress.example.test"]}]
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy: {host: egress.example.test, port: {number: 3128}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: locked, namespace: default}
spec:
  workloadSelector: {labels: {app: locked}}
  egress: [{hosts: ["./egress.example.test"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`

// holdingApp answers each request once the gate in force when it arrived
// is closed; arrivals counts the requests it has seen.
type holdingApp struct {
	gate     atomic.Pointer[chan struct{}]
	arrivals atomic.Int64
}

func (h *holdingApp) hold() chan struct{} {
	g := make(chan struct{})
	h.gate.Store(&g)
	h.arrivals.Store(0)
	return g
}

func (h *holdingApp) serve(t *testing.T) int {
	t.Helper()
	h.hold()
	close(*h.gate.Load()) // open until a test holds
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := *h.gate.Load()
		h.arrivals.Add(1)
		<-g
		io.WriteString(w, "held")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// TestSidecarIngressFields takes the Sidecar's ingress listeners,
// inboundConnectionPool and outboundTrafficPolicy.egressProxy from Istio
// YAML through real mastd and real mast-proxy sidecars (no capture), with
// curl as the client:
//   - bind + captureMode NONE: the port is served on the bound address and
//     forwarded to defaultEndpoint; captureMode IPTABLES on a proxy without
//     capture is served nowhere (istiod puts it in virtualInbound, which
//     such a proxy does not have);
//   - tls SIMPLE: curl --cacert verifies the configured certificate and
//     gets the application's answer; plaintext gets no answer; on a TLS
//     port the TCP application behind it answers through TLS; MUTUAL
//     refuses a client without a certificate and serves one with it;
//   - inboundConnectionPool (http2MaxRequests 1) and a port's own
//     connectionPool (2) overriding it: with the application holding the
//     allowed requests, one more is answered 503 and counted as overflow
//     in the proxy's /stats, for its own inbound cluster;
//   - egressProxy: under ALLOW_ANY a request for a host nobody declared
//     reaches the egress proxy, with its Host; REGISTRY_ONLY answers 502.
func TestSidecarIngressFields(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	app := versionServer(t, "app")
	var held holdingApp
	holdPort := held.serve(t)
	var egressSaw atomic.Value
	egress := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		egressSaw.Store(r.Host + r.URL.Path)
		fmt.Fprintf(w, "egress proxy: %s%s", r.Host, r.URL.Path)
	})}
	el, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go egress.Serve(el)
	t.Cleanup(func() { egress.Close() })

	certs := t.TempDir()
	ca := newTestCA(t, "sidecar ingress CA")
	ca.writePEM(t, certs, "ca.pem")
	ca.issue(t, certs, "server.pem", "server-key.pem", "server.example.test")
	ca.issue(t, certs, "client.pem", "client-key.pem", "client.example.test")

	ip, bind, clientIP, lockedIP := uniqueLoopback(), uniqueLoopback(), uniqueLoopback(), uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "sidecar.yaml", fmt.Sprintf(sidecarIngressConfig, bind, app, holdPort, certs, el.Addr().(*net.TCPAddr).Port, tcpEcho(t)))
	xdsAddr := startControlPlane(t, dir)
	for _, p := range []struct{ ip, name, app string }{{ip, "server-1", "server"}, {clientIP, "client-1", "client"}, {lockedIP, "locked-1", "locked"}} {
		start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~%s.default~default.svc.cluster.local", p.ip, p.name),
			"--xds-addr", xdsAddr, "--admin-addr", p.ip+":15000", "--drain-period", "1s",
			"--labels", "app="+p.app, "--meta", "INTERCEPTION_MODE=NONE")
	}

	// run runs curl and returns the status code and body (code "000" when
	// no HTTP answer came).
	run := func(args ...string) (string, string, error) {
		out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"}, args...)...).CombinedOutput()
		s := string(out)
		i := strings.LastIndexByte(s, '\n')
		if i < 0 {
			return "", s, err
		}
		return s[i+1:], s[:i], err
	}
	url := func(scheme string, port int) string { return fmt.Sprintf("%s://%s:%d/x", scheme, bind, port) }

	t.Run("bind and captureMode NONE forward to defaultEndpoint", func(t *testing.T) {
		eventually(t, 30*time.Second, "the bound ingress listener", func() error {
			if code, body, err := run(url("http", 8080)); code != "200" || body != "app" {
				return fmt.Errorf("%s %q, %v", code, body, err)
			}
			return nil
		})
		// The same port on the proxy's own address is not served: the
		// ingress bind replaced it.
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "8080"), 2*time.Second); err == nil {
			c.Close()
			t.Errorf("%s:8080 accepts connections; the ingress listener should be bound on %s only", ip, bind)
		}
		// captureMode IPTABLES on a proxy without capture: nowhere.
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(bind, "8085"), 2*time.Second); err == nil {
			c.Close()
			t.Errorf("%s:8085 (captureMode IPTABLES) accepts connections on a proxy without capture", bind)
		}
	})

	t.Run("tls SIMPLE terminates TLS with the configured certificate", func(t *testing.T) {
		resolve := fmt.Sprintf("server.example.test:8443:%s", bind)
		eventually(t, 30*time.Second, "HTTPS through the sidecar", func() error {
			code, body, err := run("--cacert", filepath.Join(certs, "ca.pem"), "--resolve", resolve, "https://server.example.test:8443/x")
			if code != "200" || body != "app" {
				return fmt.Errorf("%s %q, %v", code, body, err)
			}
			return nil
		})
		// A certificate for another name fails verification: curl saw ours.
		if code, body, err := run("--cacert", filepath.Join(certs, "ca.pem"), "--resolve", "other.example.test:8443:"+bind, "https://other.example.test:8443/x"); err == nil {
			t.Errorf("curl accepted the certificate for other.example.test: %s %q", code, body)
		}
		if code, body, _ := run(url("http", 8443)); code == "200" {
			t.Errorf("plaintext HTTP on the TLS port was served: %s %q", code, body)
		}
	})

	t.Run("tls SIMPLE on a TLS port terminates TLS in front of a TCP application", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(ca.cert)
		eventually(t, 30*time.Second, "the echo behind TLS", func() error {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(bind, "8445"),
				&tls.Config{RootCAs: pool, ServerName: "server.example.test"})
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "inside TLS\n")
			line, err := bufio.NewReader(c).ReadString('\n')
			if line != "echo: inside TLS\n" {
				return fmt.Errorf("answer %q, %v", line, err)
			}
			return nil
		})
	})

	t.Run("tls MUTUAL refuses a client without a certificate", func(t *testing.T) {
		resolve := fmt.Sprintf("server.example.test:8444:%s", bind)
		base := []string{"--cacert", filepath.Join(certs, "ca.pem"), "--resolve", resolve}
		eventually(t, 30*time.Second, "mutual TLS with a client certificate", func() error {
			code, body, err := run(append(base, "--cert", filepath.Join(certs, "client.pem"), "--key", filepath.Join(certs, "client-key.pem"), "https://server.example.test:8444/x")...)
			if code != "200" || body != "app" {
				return fmt.Errorf("%s %q, %v", code, body, err)
			}
			return nil
		})
		if code, body, err := run(append(base, "https://server.example.test:8444/x")...); err == nil || code == "200" {
			t.Errorf("a client without a certificate was served: %s %q, %v", code, body, err)
		}
	})

	// overflow holds `allowed` requests in the application on port, then
	// sends one more, which must be refused with 503 without reaching it.
	overflow := func(t *testing.T, port, allowed int) {
		eventually(t, 30*time.Second, "the bound ingress listener", func() error {
			if code, body, err := run(url("http", port)); code != "200" || body != "held" {
				return fmt.Errorf("%s %q, %v", code, body, err)
			}
			return nil
		})
		gate := held.hold()
		var wg sync.WaitGroup
		codes := make([]string, allowed)
		for i := range allowed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _, _ = run(url("http", port))
			}()
		}
		eventually(t, 30*time.Second, "the application holds the allowed requests", func() error {
			if n := held.arrivals.Load(); n != int64(allowed) {
				return fmt.Errorf("%d requests held, want %d", n, allowed)
			}
			return nil
		})
		code, body, _ := run(url("http", port))
		close(gate)
		wg.Wait()
		if code != "503" {
			t.Errorf("request over the limit of %d: %s %q, want 503", allowed, code, body)
		}
		if n := held.arrivals.Load(); n != int64(allowed) {
			t.Errorf("the application saw %d requests, want %d (the one over the limit must not reach it)", n, allowed)
		}
		for i, c := range codes {
			if c != "200" {
				t.Errorf("held request %d: %s, want 200", i, c)
			}
		}
		resp, err := http.Get("http://" + ip + ":15000/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		want := fmt.Sprintf("cluster.inbound|%d||.upstream_rq_pending_overflow: 1", port)
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("/stats has no %q:\n%s", want, grepLines(string(b), "overflow"))
		}
	}
	t.Run("inboundConnectionPool limits an inbound cluster", func(t *testing.T) { overflow(t, 8081, 1) })
	t.Run("an ingress connectionPool overrides inboundConnectionPool", func(t *testing.T) { overflow(t, 8082, 2) })

	t.Run("egressProxy receives unknown hosts under ALLOW_ANY", func(t *testing.T) {
		eventually(t, 30*time.Second, "the egress proxy", func() error {
			code, body, err := run("-x", "http://"+clientIP+":15001", "http://unknown.example.test/some/path")
			if code != "200" || body != "egress proxy: unknown.example.test/some/path" {
				return fmt.Errorf("%s %q, %v", code, body, err)
			}
			return nil
		})
		egressSaw.Store("")
		code, body, _ := run("-x", "http://"+lockedIP+":15001", "http://unknown.example.test/some/path")
		if code != "502" {
			t.Errorf("REGISTRY_ONLY: unknown host answered %s %q, want 502", code, body)
		}
		if s := egressSaw.Load(); s != "" {
			t.Errorf("REGISTRY_ONLY: the egress proxy saw %q", s)
		}
		// The locked client does reach the declared service itself.
		eventually(t, 30*time.Second, "a registry service under REGISTRY_ONLY", func() error {
			code, body, err := run("-x", "http://"+lockedIP+":15001", "http://egress.example.test:3128/known")
			if code != "200" || body != "egress proxy: egress.example.test:3128/known" {
				return fmt.Errorf("%s %q, %v", code, body, err)
			}
			return nil
		})
	})
}
