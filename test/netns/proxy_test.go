package netns

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/capture"
)

// meshConfig is mastd's configuration for TestRealSidecars: one HTTP
// service whose only endpoint is the server namespace's address.
const meshConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server, namespace: default}
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: server}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-1, namespace: default}
spec:
  address: %s
  labels: {app: server}
`

// nsProc is a program running in a namespace; its output is kept.
type nsProc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func (p *nsProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *nsProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startIn runs path with args in ns (as the proxy's 1337:1337 when asProxy)
// and kills it when t ends, logging its output if t failed.
func startIn(t *testing.T, ns *Namespace, asProxy bool, path string, args ...string) *nsProc {
	t.Helper()
	p := &nsProc{name: filepath.Base(path) + "@" + ns.Name, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := ns.Start(p.cmd, asProxy, capture.DefaultProxyID, capture.DefaultProxyID); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", p.name, p.output())
		}
	})
	return p
}

// waitFor polls f until it returns nil or 60 seconds pass.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buildMast builds mastd and mast-proxy into dir (readable by the proxy's
// user) and returns their paths.
func buildMast(t *testing.T, dir string) (mastd, proxy string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/mast-mesh/mast/cmd/mastd", "github.com/mast-mesh/mast/cmd/mast-proxy")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "mastd"), filepath.Join(dir, "mast-proxy")
}

// statValue reads one counter from a sidecar's admin /stats (run inside
// its namespace; loopback traffic is not captured).
func statValue(t *testing.T, ns *Namespace, name string) int {
	t.Helper()
	out, err := ns.Exec(context.Background(), "curl", "-sS", "--max-time", "10", "http://127.0.0.1:15000/stats")
	if err != nil {
		t.Fatalf("stats in %s: %v: %s", ns.Name, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// curlFull runs curl in ns with extra arguments and returns the response
// headers (lower-case names) and the decoded body.
func curlFull(t *testing.T, ns *Namespace, args ...string) (map[string]string, seen) {
	t.Helper()
	out, err := ns.Exec(context.Background(), "curl", append([]string{"-sS", "-i", "--max-time", "30"}, args...)...)
	if err != nil {
		t.Fatalf("curl %v from %s: %v: %s", args, ns.Name, err, out)
	}
	head, body, ok := strings.Cut(string(out), "\r\n\r\n")
	if !ok {
		t.Fatalf("curl %v: no header end in %q", args, out)
	}
	hdr := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(head))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			hdr[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("curl %v: %v: %q", args, err, out)
	}
	return hdr, s
}

// TestRealSidecars is transparent capture end to end with the real programs:
// a client and a server namespace joined by a veth pair, a third namespace
// running mastd, each workload namespace running a real mast-proxy as
// 1337:1337 in REDIRECT mode programmed over the network by mastd, and the
// capture rules installed by `mast-proxy iptables`. Unmodified curl in the
// client namespace calls the server by its ServiceEntry host (resolved to
// the server's address) and by bare IP; each request goes client → outbound
// capture 15001 (the original destination picks the listener of port 8080,
// or PassthroughCluster) → the server's inbound capture 15006 (the filter
// chain of port 8080) → the application. Both sidecars' counters prove they
// handled it.
func TestRealSidecars(t *testing.T) {
	Require(t, "iptables", "iptables-save", "iptables-restore", "curl")
	ctx := context.Background()
	client, server, cp := NewNamespace(t, "client"), NewNamespace(t, "server"), NewNamespace(t, "cp")
	Veth(t, client, "eth0", clientAddr, server, "eth0", serverAddr)
	Veth(t, client, "cp0", netip.MustParsePrefix("10.78.1.1/24"), cp, "c0", netip.MustParsePrefix("10.78.1.2/24"))
	Veth(t, server, "cp0", netip.MustParsePrefix("10.78.2.1/24"), cp, "s0", netip.MustParsePrefix("10.78.2.2/24"))
	srvIP := serverAddr.Addr().String()
	const app = 8080
	startServer(t, server, app)

	dir := SharedDir(t)
	mastdBin, proxyBin := buildMast(t, dir)
	cfgDir := filepath.Join(dir, "config")
	if err := os.Mkdir(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "mesh.yaml"), []byte(fmt.Sprintf(meshConfig, srvIP)), 0o644); err != nil {
		t.Fatal(err)
	}
	mastd := startIn(t, cp, false, mastdBin, "--config", cfgDir, "--xds-addr", "0.0.0.0:15010", "--monitoring-addr", "127.0.0.1:15014",
		"--debounce-after", "10ms")
	waitFor(t, "mastd serving", func() error {
		if !strings.Contains(mastd.output(), "mastd serving") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	sidecar := func(ns *Namespace, ip, name, xds string) {
		id := fmt.Sprintf("sidecar~%s~%s.default~default.svc.cluster.local", ip, name)
		startIn(t, ns, true, proxyBin, "--node-id", id, "--xds-addr", xds, "--xds-tls=false", "--admin-addr", "127.0.0.1:15000",
			"--labels", "app="+strings.TrimSuffix(name, "-1"), "--drain-period", "1s")
		waitFor(t, "sidecar ready in "+ns.Name, func() error {
			out, err := ns.Exec(ctx, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:15000/ready")
			if err != nil || strings.TrimSpace(string(out)) != "LIVE" {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		// The capture rules, installed by the real `mast-proxy iptables`
		// with its defaults (proxy uid 1337, 15001 outbound, 15006 inbound).
		if out, err := ns.Exec(ctx, proxyBin, "iptables"); err != nil {
			t.Fatalf("mast-proxy iptables in %s: %v: %s", ns.Name, err, out)
		}
	}
	sidecar(server, srvIP, "server-1", "10.78.2.2:15010")
	sidecar(client, clientAddr.Addr().String(), "client-1", "10.78.1.2:15010")

	host := "server.default.svc.cluster.local"
	outCluster := "cluster.outbound|8080||" + host + ".upstream_rq_2xx"
	inCluster := "cluster.inbound|8080||.upstream_rq_2xx"
	t.Run("by service host", func(t *testing.T) {
		outBefore, inBefore := statValue(t, client, outCluster), statValue(t, server, inCluster)
		// --resolve: curl connects to the server's address as if DNS had
		// answered it, and sends the service host as Host.
		hdr, s := curlFull(t, client, "--resolve", fmt.Sprintf("%s:%d:%s", host, app, srvIP), fmt.Sprintf("http://%s:%d/hello", host, app))
		t.Logf("server saw %+v; response headers %v", s, hdr)
		if want := fmt.Sprintf("%s:%d", host, app); s.Host != want {
			t.Errorf("server saw Host %q, want %q", s.Host, want)
		}
		// The server sidecar's inbound cluster delivers to 127.0.0.1:8080.
		if remoteIP(t, s) != "127.0.0.1" || s.Local != fmt.Sprintf("127.0.0.1:%d", app) {
			t.Errorf("server saw %s → %s, want the inbound sidecar's 127.0.0.1 → 127.0.0.1:%d", s.Remote, s.Local, app)
		}
		if hdr["x-envoy-upstream-service-time"] == "" {
			t.Errorf("no x-envoy-upstream-service-time: the response did not come through an HTTP sidecar: %v", hdr)
		}
		if got := statValue(t, client, outCluster); got != outBefore+1 {
			t.Errorf("client sidecar %s = %d, want %d", outCluster, got, outBefore+1)
		}
		if got := statValue(t, server, inCluster); got != inBefore+1 {
			t.Errorf("server sidecar %s = %d, want %d", inCluster, got, inBefore+1)
		}
	})
	t.Run("service host with another port", func(t *testing.T) {
		// A sidecar's route configurations ignore the Host's port, as
		// istiod's do since Istio 1.15: a Host naming the service with a
		// port other than the listener's still selects the service's
		// virtual host (before, it fell to PassthroughCluster), and the
		// Host reaches the server as it was sent.
		outBefore, passBefore := statValue(t, client, outCluster), statValue(t, client, "cluster.PassthroughCluster.upstream_rq_2xx")
		other := fmt.Sprintf("%s:%d", host, app+1)
		_, s := curlFull(t, client, "-H", "Host: "+other, fmt.Sprintf("http://%s:%d/other-port", srvIP, app))
		if s.Host != other {
			t.Errorf("server saw Host %q, want %q", s.Host, other)
		}
		if got := statValue(t, client, outCluster); got != outBefore+1 {
			t.Errorf("client sidecar %s = %d, want %d", outCluster, got, outBefore+1)
		}
		if got := statValue(t, client, "cluster.PassthroughCluster.upstream_rq_2xx"); got != passBefore {
			t.Errorf("client sidecar PassthroughCluster 2xx = %d, want %d", got, passBefore)
		}
	})
	t.Run("by IP through PassthroughCluster", func(t *testing.T) {
		inBefore := statValue(t, server, inCluster)
		passBefore := statValue(t, client, "cluster.PassthroughCluster.upstream_rq_2xx")
		_, s := curlFull(t, client, fmt.Sprintf("http://%s:%d/by-ip", srvIP, app))
		if want := fmt.Sprintf("%s:%d", srvIP, app); s.Host != want || remoteIP(t, s) != "127.0.0.1" {
			t.Errorf("server saw Host %q from %s, want %q from the inbound sidecar", s.Host, s.Remote, want)
		}
		if got := statValue(t, client, "cluster.PassthroughCluster.upstream_rq_2xx"); got != passBefore+1 {
			t.Errorf("client sidecar PassthroughCluster 2xx = %d, want %d", got, passBefore+1)
		}
		if got := statValue(t, server, inCluster); got != inBefore+1 {
			t.Errorf("server sidecar %s = %d, want %d", inCluster, got, inBefore+1)
		}
	})
}
