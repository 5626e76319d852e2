package e2e

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// edgeConfig: tunnel.example.test:3128 is tinyproxy (%[1]d) with a
// CONNECT tunnel to the echo server (%[2]d); posttun.example.test:3129 is a
// net/http server (%[3]d) terminating POST tunnels; ppv1 and ppv2 (8101,
// 8102) are HAProxy (%[4]d) accepting the PROXY protocol; rec1 and rec2
// (8103, 8104) record the first bytes of each connection (%[5]d). The
// client's Sidecar binds the ports on %[6]s.
const edgeConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: forward-proxy, namespace: default}
spec:
  hosts: [tunnel.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 3128, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tunnel, namespace: default}
spec:
  host: tunnel.example.test
  trafficPolicy:
    tunnel: {protocol: CONNECT, targetHost: 127.0.0.1, targetPort: %[2]d}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: post-proxy, namespace: default}
spec:
  hosts: [posttun.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 3129, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[3]d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: posttun, namespace: default}
spec:
  host: posttun.example.test
  subsets:
  - name: post
    trafficPolicy:
      tunnel: {protocol: POST, targetHost: 127.0.0.1, targetPort: %[2]d}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: posttun, namespace: default}
spec:
  hosts: [posttun.example.test]
  tcp: [{route: [{destination: {host: posttun.example.test, subset: post}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ppv1, namespace: default}
spec:
  hosts: [ppv1.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8101, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[4]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ppv2, namespace: default}
spec:
  hosts: [ppv2.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8102, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[4]d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ppv1, namespace: default}
spec:
  host: ppv1.example.test
  trafficPolicy: {proxyProtocol: {version: V1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ppv2, namespace: default}
spec:
  host: ppv2.example.test
  trafficPolicy: {proxyProtocol: {version: V2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rec1, namespace: default}
spec:
  hosts: [rec1.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8103, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[5]d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rec2, namespace: default}
spec:
  hosts: [rec2.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8104, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %[5]d}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rec1, namespace: default}
spec:
  host: rec1.example.test
  trafficPolicy: {proxyProtocol: {version: V1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rec2, namespace: default}
spec:
  host: rec2.example.test
  trafficPolicy: {proxyProtocol: {version: V2}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - {port: {number: 3128, protocol: TCP, name: t1}, bind: %[6]s, captureMode: NONE, hosts: ["./tunnel.example.test"]}
  - {port: {number: 3129, protocol: TCP, name: t2}, bind: %[6]s, captureMode: NONE, hosts: ["./posttun.example.test"]}
  - {port: {number: 8101, protocol: TCP, name: t3}, bind: %[6]s, captureMode: NONE, hosts: ["./ppv1.example.test"]}
  - {port: {number: 8102, protocol: TCP, name: t4}, bind: %[6]s, captureMode: NONE, hosts: ["./ppv2.example.test"]}
  - {port: {number: 8103, protocol: TCP, name: t5}, bind: %[6]s, captureMode: NONE, hosts: ["./rec1.example.test"]}
  - {port: {number: 8104, protocol: TCP, name: t6}, bind: %[6]s, captureMode: NONE, hosts: ["./rec2.example.test"]}
`

// startTinyproxy runs tinyproxy (Debian's) on a free port, allowing CONNECT
// to any port from loopback; it logs each request to the returned file.
func startTinyproxy(t *testing.T) (int, string) {
	t.Helper()
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		t.Skip("tinyproxy not installed (apt-get install tinyproxy; .ci/run installs it)")
	}
	dir := t.TempDir()
	port := freePort(t)
	logf := filepath.Join(dir, "tinyproxy.log")
	conf := fmt.Sprintf("Port %d\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nLogLevel Connect\nLogFile %q\nPidFile %q\nMaxClients 20\n",
		port, logf, filepath.Join(dir, "tinyproxy.pid"))
	writeFile(t, dir, "tinyproxy.conf", conf)
	startBinary(t, bin, "-d", "-c", filepath.Join(dir, "tinyproxy.conf"))
	return port, logf
}

// startHAProxy runs HAProxy (Debian's) on a free port with accept-proxy:
// it answers every HTTP request with the client address it learned from
// the PROXY protocol header ("src=IP:PORT").
func startHAProxy(t *testing.T) int {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed (apt-get install haproxy; .ci/run installs it)")
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend pp
  bind 127.0.0.1:%d accept-proxy
  http-request return status 200 content-type text/plain lf-string "src=%%[src]:%%[src_port]"
`, port)
	writeFile(t, dir, "haproxy.cfg", conf)
	startBinary(t, bin, "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	return port
}

// postTunnel serves POST tunnels with net/http: the request body's bytes go
// to the request's Host, whose answer streams back as the response body.
func postTunnel(t *testing.T, posts *atomic.Int64) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/" {
			http.Error(w, "want POST /", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer up.Close()
		posts.Add(1)
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		go func() {
			io.Copy(up, r.Body)
			up.(*net.TCPConn).CloseWrite()
		}()
		buf := make([]byte, 4096)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				rc.Flush()
			}
			if err != nil {
				return
			}
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// firstBytes answers each connection with the hex of its first 16 bytes.
func firstBytes(t *testing.T) int {
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
				b := make([]byte, 16)
				if _, err := io.ReadFull(c, b); err == nil {
					fmt.Fprintf(c, "%x\n", b)
				}
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// TestEdgeFields takes DestinationRule tunnel and proxyProtocol through
// real mastd and a real mast-proxy sidecar (ports bound by its Sidecar):
//   - tunnel CONNECT: the stream reaches the echo server through tinyproxy,
//     which logs the CONNECT for the tunnel's target (without the tunnel
//     tinyproxy would answer the bytes with an HTTP error);
//   - tunnel POST (on a subset, through a TCP route): the stream goes as the
//     body of a POST to a net/http server that relays it to the target;
//   - proxyProtocol V1 and V2: HAProxy with accept-proxy (which refuses
//     connections without the header) reports the client's own address, a
//     loopback address the client bound, not the sidecar's; a recorder sees
//     the v1 text header and the v2 binary signature.
func TestEdgeFields(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install curl)")
	}
	echo := tcpEcho(t)
	tp, tpLog := startTinyproxy(t)
	var posts atomic.Int64
	ip := uniqueLoopback()
	dir := t.TempDir()
	writeFile(t, dir, "edge.yaml", fmt.Sprintf(edgeConfig, tp, echo, postTunnel(t, &posts), startHAProxy(t), firstBytes(t), ip))
	xdsAddr := startControlPlane(t, dir)
	start(t, "mast-proxy", "--node-id", fmt.Sprintf("sidecar~%s~client-1.default~default.svc.cluster.local", ip),
		"--xds-addr", xdsAddr, "--admin-addr", ip+":15000", "--drain-period", "1s",
		"--labels", "app=client", "--meta", "INTERCEPTION_MODE=NONE")

	// echoThrough sends a line on a new connection to the bound port and
	// returns the answer's first line.
	echoThrough := func(port int, line string) (string, error) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, fmt.Sprint(port)), 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, line+"\n"); err != nil {
			return "", err
		}
		got, err := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(got), err
	}

	t.Run("tunnel CONNECT through tinyproxy", func(t *testing.T) {
		eventually(t, 30*time.Second, "echo through the CONNECT tunnel", func() error {
			got, err := echoThrough(3128, "through tinyproxy")
			if err != nil || got != "echo: through tinyproxy" {
				return fmt.Errorf("answer %q, %v", got, err)
			}
			return nil
		})
		b, _ := os.ReadFile(tpLog)
		if want := fmt.Sprintf("CONNECT 127.0.0.1:%d HTTP/1.1", echo); !strings.Contains(string(b), want) {
			t.Errorf("tinyproxy's log has no %q:\n%s", want, b)
		}
	})

	t.Run("tunnel POST", func(t *testing.T) {
		eventually(t, 30*time.Second, "echo through the POST tunnel", func() error {
			got, err := echoThrough(3129, "through a POST")
			if err != nil || got != "echo: through a POST" {
				return fmt.Errorf("answer %q, %v", got, err)
			}
			return nil
		})
		if posts.Load() == 0 {
			t.Error("the POST tunnel server saw no tunnel")
		}
	})

	client := uniqueLoopback()
	for _, c := range []struct {
		name string
		port int
	}{{"V1", 8101}, {"V2", 8102}} {
		t.Run("proxyProtocol "+c.name+" to HAProxy", func(t *testing.T) {
			eventually(t, 30*time.Second, "HAProxy answers with the client's address", func() error {
				out, err := exec.Command(curl, "-sS", "--max-time", "10", "--interface", client,
					fmt.Sprintf("http://%s:%d/", ip, c.port)).CombinedOutput()
				if err != nil || !strings.HasPrefix(string(out), "src="+client+":") {
					return fmt.Errorf("HAProxy saw %q (want src=%s:PORT), %v", out, client, err)
				}
				return nil
			})
		})
	}
	for _, c := range []struct {
		name string
		port int
		want string
	}{{"V1", 8103, "PROXY TCP4 " + client[:5]}, {"V2", 8104, "\r\n\r\n\x00\r\nQUIT\n\x21\x11"}} {
		t.Run("proxyProtocol "+c.name+" header", func(t *testing.T) {
			eventually(t, 30*time.Second, "the recorder sees the header", func() error {
				cl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(client)}, Timeout: 5 * time.Second}
				conn, err := cl.Dial("tcp", net.JoinHostPort(ip, fmt.Sprint(c.port)))
				if err != nil {
					return err
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(conn, "payload that follows the header\n")
				line, err := bufio.NewReader(conn).ReadString('\n')
				got, _ := hex.DecodeString(strings.TrimSpace(line))
				if !strings.HasPrefix(string(got), c.want) {
					return fmt.Errorf("first bytes %q, want %q first (%v)", got, c.want, err)
				}
				return nil
			})
		})
	}
}
