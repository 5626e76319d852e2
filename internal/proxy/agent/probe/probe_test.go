package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name, in, err string
		want          Timing
	}{
		{name: "defaults", in: `{"httpGet":{"port":8080}}`, want: Timing{Timeout: time.Second, Period: 10 * time.Second, SuccessThreshold: 1, FailureThreshold: 1}},
		{name: "all timings", in: `{"initialDelaySeconds":3,"timeoutSeconds":2,"periodSeconds":5,"successThreshold":2,"failureThreshold":4,"tcpSocket":{"port":9}}`,
			want: Timing{InitialDelay: 3 * time.Second, Timeout: 2 * time.Second, Period: 5 * time.Second, SuccessThreshold: 2, FailureThreshold: 4}},
		{name: "unknown field", in: `{"periodSecond":5,"httpGet":{"port":8080}}`, err: `unknown field "periodSecond"`},
		{name: "two methods", in: `{"httpGet":{"port":8080},"tcpSocket":{"port":8080}}`, err: "exactly one"},
		{name: "none", in: `{}`, err: "exactly one"},
		{name: "negative", in: `{"failureThreshold":-1,"tcpSocket":{"port":1}}`, err: "failureThreshold: -1"},
		{name: "port", in: `{"httpGet":{"port":70000}}`, err: "httpGet.port: 70000"},
		{name: "port zero", in: `{"grpc":{"port":0}}`, err: "grpc.port: 0"},
		{name: "scheme", in: `{"httpGet":{"port":1,"scheme":"ftp"}}`, err: "httpGet.scheme"},
		{name: "header", in: `{"httpGet":{"port":1,"httpHeaders":[{"name":"a b","value":"x"}]}}`, err: "httpHeaders[0]"},
		{name: "header value", in: `{"httpGet":{"port":1,"httpHeaders":[{"name":"X","value":"a\r\nb"}]}}`, err: "httpHeaders[0]"},
		{name: "empty command", in: `{"exec":{"command":[]}}`, err: "exec.command"},
		{name: "trailing", in: `{"tcpSocket":{"port":1}} {}`, err: "after the JSON"},
		{name: "not json", in: `periodSeconds: 5`, err: "invalid character"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse: %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Timing(); got != tt.want {
				t.Errorf("Timing() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"httpGet":{"path":"/ready","port":8080,"httpHeaders":[{"name":"Host","value":"a"}]},"periodSeconds":1}`,
		`{"tcpSocket":{"host":"127.0.0.1","port":9}}`, `{"exec":{"command":["true"]}}`, `{"grpc":{"port":1,"service":"s"}}`, `{}`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if c.validate() != nil {
			t.Fatalf("Parse accepted a config that does not validate: %s", data)
		}
		tm := c.Timing()
		if tm.Timeout <= 0 || tm.Period <= 0 || tm.SuccessThreshold < 1 || tm.FailureThreshold < 1 {
			t.Fatalf("Timing %+v of %s", tm, data)
		}
		if _, err := New(c, Options{}); err != nil && !errors.Is(err, ErrExecNotAllowed) {
			t.Fatalf("New: %v", err)
		}
	})
}

func TestThresholds(t *testing.T) {
	fail := errors.New("down")
	type step struct {
		err  error
		want string // "", "healthy" or "unhealthy"
	}
	for _, tt := range []struct {
		name             string
		success, failure int
		steps            []step
	}{
		{name: "defaults report the first result", steps: []step{{nil, "healthy"}, {nil, ""}, {fail, "unhealthy"}, {fail, ""}, {nil, "healthy"}}},
		{name: "first failure is reported too", steps: []step{{fail, "unhealthy"}, {nil, "healthy"}}},
		{name: "failureThreshold 3", success: 1, failure: 3, steps: []step{
			{nil, "healthy"}, {fail, ""}, {fail, ""}, {nil, ""}, {fail, ""}, {fail, ""}, {fail, "unhealthy"}, {fail, ""}}},
		{name: "successThreshold 2", success: 2, failure: 1, steps: []step{
			{fail, "unhealthy"}, {nil, ""}, {fail, ""}, {nil, ""}, {nil, "healthy"}, {nil, ""}, {nil, ""}}},
		{name: "both", success: 2, failure: 2, steps: []step{
			{nil, ""}, {nil, "healthy"}, {fail, ""}, {fail, "unhealthy"}, {nil, ""}, {fail, ""}, {nil, ""}, {nil, "healthy"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			th := Thresholds{Success: tt.success, Failure: tt.failure}
			for i, s := range tt.steps {
				ev, changed := th.Observe(s.err)
				got := ""
				if changed {
					got = map[bool]string{true: "healthy", false: "unhealthy"}[ev.Healthy]
				}
				if got != s.want {
					t.Fatalf("step %d (err %v): %q, want %q", i, s.err, got, s.want)
				}
				if changed && !ev.Healthy && ev.Message != "down" {
					t.Fatalf("step %d: message %q", i, ev.Message)
				}
			}
		})
	}
}

// fakeClock hands every After to the test, which fires it.
type fakeClock struct{ waits chan wait }

type wait struct {
	d  time.Duration
	ch chan time.Time
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.waits <- wait{d, ch}
	return ch
}

// scripted returns the next result each probe and records the deadline.
type scripted struct {
	results chan error
	timeout chan time.Duration
}

func (s *scripted) Probe(ctx context.Context) error {
	dl, _ := ctx.Deadline()
	s.timeout <- time.Until(dl)
	return <-s.results
}

func TestCheckerRun(t *testing.T) {
	clock := &fakeClock{waits: make(chan wait)}
	pr := &scripted{results: make(chan error), timeout: make(chan time.Duration, 1)}
	events := make(chan Event, 10)
	c := &Checker{Prober: pr, Clock: clock,
		Timing: Timing{InitialDelay: 7 * time.Second, Timeout: time.Hour, Period: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 2}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, func(e Event) { events <- e }); close(done) }()

	w := <-clock.waits
	if w.d != 7*time.Second {
		t.Fatalf("initial wait %v, want the initial delay 7s", w.d)
	}
	w.ch <- time.Time{}
	probe := func(err error) {
		t.Helper()
		if d := <-pr.timeout; d <= 0 || d > time.Hour {
			t.Fatalf("probe deadline in %v, want within the 1h timeout", d)
		}
		pr.results <- err
		w := <-clock.waits
		if w.d != 5*time.Second {
			t.Fatalf("wait %v between probes, want the period 5s", w.d)
		}
		w.ch <- time.Time{}
	}
	probe(nil)
	if e := <-events; !e.Healthy {
		t.Fatalf("first event %+v, want healthy", e)
	}
	probe(errors.New("503"))
	probe(errors.New("503 again"))
	if e := <-events; e.Healthy || e.Message != "503 again" {
		t.Fatalf("event %+v, want unhealthy after two failures", e)
	}
	probe(nil)
	if e := <-events; !e.Healthy {
		t.Fatalf("event %+v, want healthy again", e)
	}
	<-pr.timeout
	cancel()
	pr.results <- nil
	<-done
	if len(events) != 0 {
		t.Fatalf("unexpected event %+v", <-events)
	}
}

func TestHTTPProber(t *testing.T) {
	var code = http.StatusOK
	var gotHost, gotUA, gotHeader, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotUA, gotHeader, gotPath = r.Host, r.UserAgent(), r.Header.Get("X-Probe"), r.URL.RequestURI()
		w.WriteHeader(code)
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	pr, err := New(&Config{HTTPGet: &HTTPGet{Path: "/ready?x=1", Port: uint32(p), HTTPHeaders: []Header{{"Host", "app.local"}, {"X-Probe", "1"}}}}, Options{DefaultHost: host})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		code int
		ok   bool
	}{{200, true}, {302, true}, {399, true}, {400, false}, {503, false}} {
		code = tt.code
		err := pr.Probe(ctx)
		if (err == nil) != tt.ok {
			t.Errorf("status %d: %v", tt.code, err)
		}
	}
	if gotHost != "app.local" || gotUA != "istio-probe/1.0" || gotHeader != "1" || gotPath != "/ready?x=1" {
		t.Errorf("request host %q user-agent %q X-Probe %q path %q", gotHost, gotUA, gotHeader, gotPath)
	}
}

// TestProbeTimeout: a probe of an application that never answers fails
// with the context's deadline (no timing asserted: the deadline is already
// past).
func TestProbeTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accept and never answer
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := uint32(l.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	for name, c := range map[string]*Config{
		"httpGet":   {HTTPGet: &HTTPGet{Port: port}},
		"grpc":      {GRPC: &GRPC{Port: port}},
		"tcpSocket": {TCPSocket: &TCPSocket{Port: port}},
	} {
		pr, err := New(c, Options{DefaultHost: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := pr.Probe(ctx); err == nil {
			t.Errorf("%s: probe past its deadline passed", name)
		}
	}
	pr, err := New(&Config{HTTPGet: &HTTPGet{Port: port}}, Options{DefaultHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- pr.Probe(ctx2) }()
	cancel2() // the server never answers: only the context ends the probe
	if err := <-errc; err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("httpGet against a silent server: %v, want the context's error", err)
	}
}

func TestTCPProber(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(l.Addr().(*net.TCPAddr).Port)
	pr, _ := New(&Config{TCPSocket: &TCPSocket{Host: "127.0.0.1", Port: port}}, Options{})
	if err := pr.Probe(context.Background()); err != nil {
		t.Fatalf("listening port: %v", err)
	}
	l.Close()
	if err := pr.Probe(context.Background()); err == nil {
		t.Fatal("closed port passed")
	}
}

func TestGRPCProber(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(l)
	defer gs.Stop()
	port := uint32(l.Addr().(*net.TCPAddr).Port)
	pr, _ := New(&Config{GRPC: &GRPC{Port: port, Service: "echo"}}, Options{DefaultHost: "127.0.0.1"})
	hs.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
	if err := pr.Probe(context.Background()); err != nil {
		t.Fatalf("SERVING: %v", err)
	}
	hs.SetServingStatus("echo", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := pr.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), "NOT_SERVING") {
		t.Fatalf("NOT_SERVING: %v", err)
	}
}

func TestExecProber(t *testing.T) {
	c := &Config{Exec: &Exec{Command: []string{"sh", "-c", "exit 0"}}}
	if _, err := New(c, Options{}); !errors.Is(err, ErrExecNotAllowed) {
		t.Fatalf("exec without AllowExec: %v", err)
	}
	pr, err := New(c, Options{AllowExec: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Probe(context.Background()); err != nil {
		t.Fatalf("exit 0: %v", err)
	}
	pr, _ = New(&Config{Exec: &Exec{Command: []string{"sh", "-c", "exit 3"}}}, Options{AllowExec: true})
	if err := pr.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("exit 3: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pr, _ = New(&Config{Exec: &Exec{Command: []string{"sleep", "60"}}}, Options{AllowExec: true})
	if err := pr.Probe(ctx); err == nil {
		t.Fatal("a command past its timeout passed")
	}
}
