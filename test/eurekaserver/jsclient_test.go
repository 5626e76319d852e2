package eurekaserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hudl/fargo"

	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/eureka"
)

// jsClient is eureka-js-client driven by jsclient/check.js.
type jsClient struct {
	t   *testing.T
	in  io.WriteCloser
	out *bufio.Scanner
}

func startJSClient(t *testing.T, host, port string, instance map[string]any) *jsClient {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (apt-get install nodejs npm; .ci/run does)")
	}
	if _, err := os.Stat("jsclient/node_modules/eureka-js-client"); err != nil {
		t.Skip("eureka-js-client is not installed: run `npm ci` in test/eurekaserver/jsclient (.ci/run does)")
	}
	b, _ := json.Marshal(instance)
	cmd := exec.Command(node, "check.js", host, port, string(b))
	cmd.Dir = "jsclient"
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return &jsClient{t: t, in: in, out: bufio.NewScanner(out)}
}

// do sends a command and fails the test unless the client answers ok.
func (c *jsClient) do(cmd string) {
	c.t.Helper()
	fmt.Fprintln(c.in, cmd)
	if !c.out.Scan() {
		c.t.Fatalf("%s: eureka-js-client exited", cmd)
	}
	name, _, _ := strings.Cut(cmd, " ")
	if got := c.out.Text(); got != "ok "+name {
		c.t.Fatalf("%s: %s", cmd, got)
	}
}

// TestEurekaJSClientAndFargo: eureka-js-client (Node) and hudl/fargo (Go),
// both written by others, register against the server, heartbeat, change
// status and deregister, and each reads the other's registration back
// (eureka-js-client with deltas); Mast's registry follows both.
func TestEurekaJSClientAndFargo(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	js := startJSClient(t, host, port, map[string]any{
		"instanceId": "js-1", "app": "REVIEWS", "hostName": "js-1.local", "ipAddr": "10.0.0.7",
		"port": map[string]any{"$": 9080, "@enabled": true}, "vipAddress": "reviews", "statusPageUrl": "http://10.0.0.7:9080/info",
		"dataCenterInfo": map[string]any{"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
		"metadata":       map[string]any{"version": "v3"},
	})
	conn := fargo.NewConn(srv.URL + "/eureka/v2")
	conn.UseJson = true

	r, err := eureka.New(eureka.Config{URL: srv.URL + "/eureka/v2", Interval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, func() {}); close(done) }()
	defer func() { cancel(); <-done }()
	mastSees := func(what, host string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var eps []*registry.Endpoint
			for _, e := range r.Snapshot().Endpoints[host] {
				eps = append(eps, e)
			}
			if len(eps) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: Mast's registry has %d endpoints of %s, want %d", what, len(eps), host, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	js.do("start")
	app, err := conn.GetApp("REVIEWS")
	if err != nil || len(app.Instances) != 1 {
		t.Fatalf("fargo reading eureka-js-client's registration: %+v, %v", app, err)
	}
	got := app.Instances[0]
	if got.Id() != "js-1" || got.IPAddr != "10.0.0.7" || got.Port != 9080 || !got.PortEnabled || got.Status != fargo.UP || got.VipAddress != "reviews" {
		t.Errorf("fargo read back %+v", got)
	}
	if v, _ := got.Metadata.GetString("version"); v != "v3" {
		t.Errorf("metadata version %q", v)
	}
	mastSees("eureka-js-client registered", "reviews", 1)
	js.do("heartbeat")

	ratings := &fargo.Instance{InstanceId: "fargo-1", HostName: "fargo-1.local", App: "RATINGS", IPAddr: "10.0.0.8", VipAddress: "ratings",
		Status: fargo.UP, Port: 9080, PortEnabled: true, DataCenterInfo: fargo.DataCenterInfo{Name: fargo.MyOwn}}
	if err := conn.RegisterInstance(ratings); err != nil {
		t.Fatal(err)
	}
	js.do("wait-app RATINGS 1")
	mastSees("fargo registered", "ratings", 1)
	if err := conn.HeartBeatInstance(ratings); err != nil {
		t.Fatal(err)
	}
	if err := conn.UpdateInstanceStatus(ratings, fargo.OUTOFSERVICE); err != nil {
		t.Fatal(err)
	}
	js.do("wait-app RATINGS 0") // through a delta: only UP instances are kept
	mastSees("fargo's instance OUT_OF_SERVICE", "ratings", 0)

	js.do("status OUT_OF_SERVICE")
	if back, err := conn.GetInstance("REVIEWS", "js-1"); err != nil || back.Status != fargo.OUTOFSERVICE {
		t.Fatalf("fargo reading eureka-js-client's status change: %+v, %v", back, err)
	}
	mastSees("eureka-js-client's instance OUT_OF_SERVICE", "reviews", 0)
	if err := conn.DeregisterInstance(ratings); err != nil {
		t.Fatal(err)
	}
	js.do("stop")
	if _, err := conn.GetApp("REVIEWS"); err == nil {
		t.Error("REVIEWS still registered after eureka-js-client stopped")
	}
	if apps, err := conn.GetApps(); err != nil || len(apps) != 0 {
		t.Errorf("apps after both deregistered: %+v, %v", apps, err)
	}
}
