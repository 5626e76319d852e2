package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the bookinfo command built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bookinfo-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "bookinfo")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building bookinfo: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running bookinfo process.
type proc struct {
	cmd  *exec.Cmd
	addr string // the address it listens on
	url  string // http://addr
	done chan error

	mu  sync.Mutex
	log bytes.Buffer
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

var listening = regexp.MustCompile(`msg=listening .*addr=(\S+)`)

// cleanEnv is the test's environment without proxy settings, so that a
// developer's HTTP_PROXY cannot change what the processes do.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// start runs bookinfo with args on 127.0.0.1:0 and waits until it listens.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan error, 1)}
	p.cmd = exec.Command(binary, append([]string{"--addr", "127.0.0.1:0"}, args...)...)
	p.cmd.Env = env
	if env == nil {
		p.cmd.Env = cleanEnv()
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		p.done <- p.cmd.Wait()
		close(addr)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		if t.Failed() {
			t.Logf("bookinfo %v log:\n%s", args, p.logs())
		}
	})
	a, ok := <-addr
	if !ok {
		t.Fatalf("bookinfo %v exited before listening:\n%s", args, p.logs())
	}
	p.addr, p.url = a, "http://"+a
	return p
}

// closedURL is a loopback URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func fetch(t *testing.T, c *http.Client, u string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// recorder is a test server standing in for a service; it keeps the
// headers of every request and answers with body.
type recorder struct {
	body string
	mu   sync.Mutex
	hdrs []http.Header
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.hdrs = append(rc.hdrs, r.Header.Clone())
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, rc.body)
}

func (rc *recorder) requests() []http.Header {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]http.Header(nil), rc.hdrs...)
}

func contains(t *testing.T, page string, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q", s)
		}
	}
}

func lacks(t *testing.T, page string, unwanted ...string) {
	t.Helper()
	for _, s := range unwanted {
		if strings.Contains(page, s) {
			t.Errorf("page contains %q", s)
		}
	}
}

const (
	reviewer1 = "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"
	reviewer2 = "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."
)

// TestBookinfo runs the four services as processes wired by URL flags and
// checks the product page each reviews version produces.
func TestBookinfo(t *testing.T) {
	t.Parallel()
	ratings := start(t, nil, "--service", "ratings")
	details := start(t, nil, "--service", "details")
	tests := []struct {
		version string
		want    []string
		not     []string
	}{
		{"v1", []string{"reviews-v1-e2e"}, []string{"glyphicon-star", "Ratings service is currently unavailable"}},
		{"v2", []string{"reviews-v2-e2e", `<font color="black"`, `<span class="glyphicon glyphicon-star">`, `<span class="glyphicon glyphicon-star-empty">`}, []string{`color="red"`}},
		{"v3", []string{"reviews-v3-e2e", `<font color="red"`, `<span class="glyphicon glyphicon-star">`, `<span class="glyphicon glyphicon-star-empty">`}, []string{`color="black"`}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			rv := start(t, nil, "--service", "reviews", "--version", tt.version, "--instance", "reviews-"+tt.version+"-e2e", "--ratings-url", ratings.url)
			pp := start(t, nil, "--service", "productpage", "--details-url", details.url, "--reviews-url", rv.url, "--ratings-url", ratings.url)
			status, page := fetch(t, nil, pp.url+"/productpage", nil)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			contains(t, page, "<title>Simple Bookstore App</title>", `<h3 class="text-center text-primary">The Comedy of Errors</h3>`,
				"Summary:", "Book Details", "paperback", "<dt>Pages:</dt>200", "PublisherA", "English", "1234567890", "123-1234567890",
				"Book Reviews", reviewer1, reviewer2, "Reviewer1", "Reviewer2", "Reviews served by:")
			contains(t, page, tt.want...)
			lacks(t, page, tt.not...)
			if tt.version != "v1" {
				// Reviewer1 has 5 stars, Reviewer2 4 stars and 1 empty one.
				if full, empty := strings.Count(page, `"glyphicon glyphicon-star"`), strings.Count(page, `"glyphicon glyphicon-star-empty"`); full != 9 || empty != 1 {
					t.Errorf("%d full and %d empty stars, want 9 and 1", full, empty)
				}
			}
		})
	}
}

func TestServiceEndpoints(t *testing.T) {
	t.Parallel()
	ratings := start(t, nil, "--service", "ratings")
	details := start(t, nil, "--service", "details")
	rv := start(t, nil, "--service", "reviews", "--version", "v3", "--ratings-url", ratings.url)
	pp := start(t, nil, "--service", "productpage", "--details-url", details.url, "--reviews-url", rv.url, "--ratings-url", ratings.url)
	tests := []struct {
		url    string
		status int
		want   string // the JSON body, compared after re-encoding; "" skips
		text   string // a plain-text body
	}{
		{details.url + "/details/0", 200, `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`, ""},
		{details.url + "/health", 200, `{"status":"Details is healthy"}`, ""},
		{ratings.url + "/ratings/0", 200, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`, ""},
		{ratings.url + "/health", 200, `{"status":"Ratings is healthy"}`, ""},
		{rv.url + "/health", 200, `{"status":"Reviews is healthy"}`, ""},
		{rv.url + "/reviews/0", 200, `{"id":"0","podname":"reviews-v3","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"` + reviewer1 + `","rating":{"stars":5,"color":"red"}},{"reviewer":"Reviewer2","text":"` + reviewer2 + `","rating":{"stars":4,"color":"red"}}]}`, ""},
		{pp.url + "/health", 200, "", "Product page is healthy"},
		{pp.url + "/api/v1/products", 200, `[{"id":0,"title":"The Comedy of Errors","descriptionHtml":"<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play."}]`, ""},
		{pp.url + "/api/v1/products/0", 200, `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`, ""},
		{pp.url + "/api/v1/products/0/reviews", 200, `{"id":"0","podname":"reviews-v3","clustername":"null","reviews":[{"reviewer":"Reviewer1","text":"` + reviewer1 + `","rating":{"stars":5,"color":"red"}},{"reviewer":"Reviewer2","text":"` + reviewer2 + `","rating":{"stars":4,"color":"red"}}]}`, ""},
		{pp.url + "/api/v1/products/0/ratings", 200, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`, ""},
		{pp.url + "/api/v1/products/x", 400, `{"error":"Sorry, product details are currently unavailable for this book."}`, ""},
	}
	for _, tt := range tests {
		status, body := fetch(t, nil, tt.url, nil)
		if status != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.url, status, tt.status, body)
			continue
		}
		if tt.text != "" && body != tt.text {
			t.Errorf("%s: %q, want %q", tt.url, body, tt.text)
		}
		if tt.want != "" && canonicalJSON(t, body) != canonicalJSON(t, tt.want) {
			t.Errorf("%s:\n got %s\nwant %s", tt.url, body, tt.want)
		}
	}
	status, index := fetch(t, nil, pp.url+"/", nil)
	if status != 200 {
		t.Fatalf("index status %d", status)
	}
	contains(t, index, "Simple Bookstore App", details.url, rv.url, ratings.url)
}

func canonicalJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestLoginAndHeaderForwarding signs in as jason and checks that end-user and
// the tracing headers sent to productpage reach ratings through reviews.
func TestLoginAndHeaderForwarding(t *testing.T) {
	t.Parallel()
	rec := &recorder{body: `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`}
	ratings := httptest.NewServer(rec)
	defer ratings.Close()
	details := start(t, nil, "--service", "details")
	rv := start(t, nil, "--service", "reviews", "--version", "v2", "--ratings-url", ratings.URL)
	pp := start(t, nil, "--service", "productpage", "--details-url", details.url, "--reviews-url", rv.url)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.PostForm(pp.url+"/login", url.Values{"username": {"jason"}, "passwd": {""}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Request.URL.Path != "/productpage" {
		t.Fatalf("login ended at %s with %d", res.Request.URL, res.StatusCode)
	}
	contains(t, string(page), "Signed in as jason", `<font color="black"`)
	if got := rec.requests(); len(got) != 1 || got[0].Get("End-User") != "jason" {
		t.Fatalf("ratings requests after login: %v", got)
	}

	trace := map[string]string{
		"x-request-id":       "2b6c5a9e-7c1d-4d8e-9f6a-1b2c3d4e5f60",
		"b3":                 "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
		"x-b3-traceid":       "80f198ee56343ba864fe8b2a57d3eff7",
		"x-b3-spanid":        "e457b5a2e4d86bd1",
		"x-b3-parentspanid":  "05e3ac9a4f6e3b90",
		"x-b3-sampled":       "1",
		"traceparent":        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"tracestate":         "congo=t61rcWkgMzE",
		"x-ot-span-context":  "ot-ctx",
		"x-datadog-trace-id": "1234",
		"user-agent":         "bookinfo-e2e/1.0",
	}
	if status, page := fetch(t, c, pp.url+"/productpage", trace); status != 200 || !strings.Contains(page, "Signed in as jason") {
		t.Fatalf("status %d, signed in shown %v", status, strings.Contains(page, "Signed in as jason"))
	}
	got := rec.requests()
	if len(got) != 2 {
		t.Fatalf("ratings called %d times", len(got))
	}
	want := map[string]string{"end-user": "jason"}
	for k, v := range trace {
		want[k] = v
	}
	for k, v := range want {
		if g := got[1].Get(k); g != v {
			t.Errorf("ratings got %s %q, want %q", k, g, v)
		}
	}
	if ck := got[1].Get("Cookie"); !strings.Contains(ck, "session=jason") {
		t.Errorf("cookie reaching ratings %q", ck)
	}

	// After signing out, end-user no longer reaches ratings.
	if status, page := fetch(t, c, pp.url+"/logout", nil); status != 200 || strings.Contains(page, "Signed in as") {
		t.Fatalf("logout: status %d", status)
	}
	got = rec.requests()
	if g := got[len(got)-1].Get("End-User"); g != "" {
		t.Errorf("end-user after logout %q", g)
	}
}

func TestDownstreamDown(t *testing.T) {
	t.Parallel()
	ratings := start(t, nil, "--service", "ratings")
	details := start(t, nil, "--service", "details")
	down := closedURL(t)
	t.Run("reviews down", func(t *testing.T) {
		pp := start(t, nil, "--service", "productpage", "--details-url", details.url, "--reviews-url", down)
		_, page := fetch(t, nil, pp.url+"/productpage", nil)
		contains(t, page, "Error fetching product reviews!", "Sorry, product reviews are currently unavailable for this book.", "Book Details", "PublisherA")
		lacks(t, page, reviewer1)
	})
	t.Run("details down", func(t *testing.T) {
		rv := start(t, nil, "--service", "reviews", "--version", "v1")
		pp := start(t, nil, "--service", "productpage", "--details-url", down, "--reviews-url", rv.url)
		_, page := fetch(t, nil, pp.url+"/productpage", nil)
		contains(t, page, "Error fetching product details!", "Sorry, product details are currently unavailable for this book.", reviewer1)
		lacks(t, page, "PublisherA")
	})
	for _, v := range []string{"v2", "v3"} {
		t.Run("ratings down "+v, func(t *testing.T) {
			rv := start(t, nil, "--service", "reviews", "--version", v, "--ratings-url", down)
			pp := start(t, nil, "--service", "productpage", "--details-url", details.url, "--reviews-url", rv.url, "--ratings-url", ratings.url)
			_, page := fetch(t, nil, pp.url+"/productpage", nil)
			if n := strings.Count(page, "<i>Ratings service is currently unavailable</i>"); n != 2 {
				t.Errorf("ratings error shown %d times, want 2", n)
			}
			contains(t, page, reviewer1, "reviews-"+v)
			lacks(t, page, "glyphicon-star")
		})
	}
}

// stall accepts requests and answers none until the client goes away; it
// counts the attempts.
type stall struct {
	mu    sync.Mutex
	calls int
}

func (s *stall) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	<-r.Context().Done()
}

func (s *stall) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// TestReviewsTimeoutAndRetry runs productpage with its default 3 s timeout
// against a reviews that never answers: productpage tries twice.
func TestReviewsTimeoutAndRetry(t *testing.T) {
	t.Parallel()
	st := &stall{}
	reviews := httptest.NewServer(st)
	defer reviews.Close()
	details := start(t, nil, "--service", "details")
	pp := start(t, nil, "--service", "productpage", "--details-url", details.url, "--reviews-url", reviews.URL)
	status, page := fetch(t, nil, pp.url+"/productpage", nil)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	contains(t, page, "Sorry, product reviews are currently unavailable for this book.", "PublisherA")
	if n := st.count(); n != 2 {
		t.Fatalf("reviews saw %d attempts, want 2 (a call and one retry)", n)
	}
}

// forwardProxy is an HTTP forward proxy standing in for a sidecar's
// HTTP_PROXY listener: it routes absolute-form requests by authority.
type forwardProxy struct {
	routes map[string]string // authority -> real address
	mu     sync.Mutex
	seen   []string // authorities requested
}

func (p *forwardProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.URL.Host)
	p.mu.Unlock()
	addr, ok := p.routes[r.URL.Host]
	if !r.URL.IsAbs() || !ok {
		http.Error(w, "no route to "+r.URL.Host, http.StatusBadGateway)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Host = addr
	res, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	io.Copy(w, res.Body)
}

func (p *forwardProxy) authorities() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// TestHTTPProxy runs productpage and reviews with Istio's default service
// URLs and HTTP_PROXY set, as `mast up` does: every call goes through the proxy.
func TestHTTPProxy(t *testing.T) {
	t.Parallel()
	fp := &forwardProxy{routes: map[string]string{}}
	proxy := httptest.NewServer(fp)
	defer proxy.Close()
	proxyEnv := cleanEnv("HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL)
	ratings := start(t, nil, "--service", "ratings")
	details := start(t, nil, "--service", "details")
	rv := start(t, proxyEnv, "--service", "reviews", "--version", "v3")
	fp.routes["details:9080"], fp.routes["reviews:9080"], fp.routes["ratings:9080"] = details.addr, rv.addr, ratings.addr
	pp := start(t, proxyEnv, "--service", "productpage")
	status, page := fetch(t, nil, pp.url+"/productpage", nil)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	contains(t, page, "PublisherA", "reviews-v3", `<font color="red"`)
	got := strings.Join(fp.authorities(), ",")
	for _, a := range []string{"details:9080", "reviews:9080", "ratings:9080"} {
		if !strings.Contains(got, a) {
			t.Errorf("the proxy did not see %s (saw %s)", a, got)
		}
	}
}

// TestGracefulShutdown sends SIGTERM to productpage while a request is in
// flight: the request completes, new connections are refused, exit status 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	reviews := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		<-release
		io.WriteString(w, `{"id":"0","podname":"reviews-slow","clustername":"null","reviews":[]}`)
	}))
	defer reviews.Close()
	details := start(t, nil, "--service", "details")
	pp := start(t, nil, "--service", "productpage", "--details-url", details.url, "--reviews-url", reviews.URL, "--timeout", "1m")

	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := http.Get(pp.url + "/productpage")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		answered <- answer{res.StatusCode, string(b), err}
	}()
	<-arrived
	if err := pp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Wait until productpage has stopped accepting connections.
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("tcp", pp.addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("productpage still accepts connections after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	a := <-answered
	if a.err != nil || a.status != 200 || !strings.Contains(a.body, "reviews-slow") {
		t.Fatalf("in-flight request: %v status %d", a.err, a.status)
	}
	if err := <-pp.done; err != nil {
		t.Fatalf("exit: %v\n%s", err, pp.logs())
	}
	pp.done <- nil // for the cleanup's wait
	if !strings.Contains(pp.logs(), "msg=stopped") {
		t.Errorf("no stopped log line:\n%s", pp.logs())
	}
}
