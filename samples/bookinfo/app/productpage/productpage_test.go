package productpage

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mast-mesh/mast/samples/bookinfo/app/details"
	"github.com/mast-mesh/mast/samples/bookinfo/app/ratings"
	"github.com/mast-mesh/mast/samples/bookinfo/app/reviews"
)

// recorder wraps a handler and keeps every request it received.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []*http.Request
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, r.Clone(r.Context()))
	rc.mu.Unlock()
	rc.next.ServeHTTP(w, r)
}

func (rc *recorder) requests() []*http.Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*http.Request(nil), rc.reqs...)
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// bookinfo starts details, reviews (version) and ratings in process and a
// productpage wired to them; it returns productpage's URL and the recorders.
type mesh struct {
	url                       string
	details, reviews, ratings *recorder
}

func startBookinfo(t *testing.T, version string, edit func(*Config)) mesh {
	t.Helper()
	m := mesh{
		details: &recorder{next: details.New(details.Config{})},
		ratings: &recorder{next: ratings.New(ratings.Config{})},
	}
	ratingsURL := serve(t, m.ratings)
	rcfg, err := reviews.Defaults(version)
	if err != nil {
		t.Fatal(err)
	}
	rcfg.RatingsURL = ratingsURL
	m.reviews = &recorder{next: reviews.New(rcfg)}
	cfg := Defaults()
	cfg.DetailsURL, cfg.ReviewsURL, cfg.RatingsURL = serve(t, m.details), serve(t, m.reviews), ratingsURL
	if edit != nil {
		edit(&cfg)
	}
	m.url = serve(t, New(cfg))
	return m
}

func get(t *testing.T, c *http.Client, u string, hdr map[string]string) (int, string) {
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
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestProductPageVersions(t *testing.T) {
	tests := []struct {
		version string
		want    []string
		not     []string
	}{
		{"v1", []string{"reviews-v1"}, []string{"glyphicon-star"}},
		{"v2", []string{"reviews-v2", `<font color="black"`, "glyphicon-star-empty"}, []string{`color="red"`}},
		{"v3", []string{"reviews-v3", `<font color="red"`, "glyphicon-star-empty"}, []string{`color="black"`}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			m := startBookinfo(t, tt.version, nil)
			status, body := get(t, nil, m.url+"/productpage", nil)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			common := []string{"<title>Simple Bookstore App</title>", "The Comedy of Errors", "Book Details", "PublisherA",
				"123-1234567890", "Book Reviews", reviews.Reviewer1Text, reviews.Reviewer2Text}
			for _, s := range append(common, tt.want...) {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(body, s) {
					t.Errorf("page contains %q", s)
				}
			}
		})
	}
}

func TestLoginSendsEndUser(t *testing.T) {
	m := startBookinfo(t, "v2", nil)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.PostForm(m.url+"/login", url.Values{"username": {"jason"}, "passwd": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Request.URL.Path != "/productpage" {
		t.Fatalf("after login: %d at %s", res.StatusCode, res.Request.URL)
	}
	if !strings.Contains(string(b), "Signed in as jason") {
		t.Fatal("the page after login does not say Signed in as jason")
	}
	for name, rc := range map[string]*recorder{"details": m.details, "reviews": m.reviews, "ratings": m.ratings} {
		reqs := rc.requests()
		if len(reqs) == 0 {
			t.Fatalf("%s not called", name)
		}
		if got := reqs[len(reqs)-1].Header.Get("end-user"); got != "jason" {
			t.Errorf("%s got end-user %q, want jason", name, got)
		}
	}

	// Sign out: the page no longer names the user and end-user is gone.
	status, body := get(t, c, m.url+"/logout", nil)
	if status != 200 || strings.Contains(body, "Signed in as") || !strings.Contains(body, "Sign in") {
		t.Fatalf("after logout: %d, signed in still shown: %v", status, strings.Contains(body, "Signed in as"))
	}
	reqs := m.ratings.requests()
	if got := reqs[len(reqs)-1].Header.Get("end-user"); got != "" {
		t.Errorf("end-user after logout: %q", got)
	}
}

func TestLoginRedirect(t *testing.T) {
	h := New(Defaults())
	tests := []struct {
		referer, user, want string
	}{
		{"", "jason", "/productpage"},
		{"http://gateway/productpage?u=test", "jason", "/productpage?u=test"},
		{"http://evil.example//elsewhere", "jason", "/productpage"},
		{"http://h/login", "jason", "/productpage"},
		{"/", "", "/"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"username": {tt.user}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tt.referer != "" {
			req.Header.Set("Referer", tt.referer)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusFound || w.Header().Get("Location") != tt.want {
			t.Errorf("referer %q: %d to %q, want 302 to %q", tt.referer, w.Code, w.Header().Get("Location"), tt.want)
		}
		cookies := w.Result().Cookies()
		if tt.user == "" {
			if len(cookies) != 0 {
				t.Errorf("empty user set cookies %v", cookies)
			}
			continue
		}
		names := map[string]string{}
		for _, c := range cookies {
			names[c.Name] = c.Value
		}
		if names[SessionCookie] != tt.user || names[UserCookie] != tt.user {
			t.Errorf("cookies %v", cookies)
		}
	}
}

func TestUser(t *testing.T) {
	tests := []struct {
		cookie, want string
	}{
		{"", ""},
		{"session=jason", "jason"},
		{"user=jason", "jason"},
		{"session=a%20b; user=other", "a b"},
		{"session=%zz; user=fallback", "fallback"},
		{"session=", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.cookie != "" {
			r.Header.Set("Cookie", tt.cookie)
		}
		if got := User(r); got != tt.want {
			t.Errorf("cookie %q: user %q, want %q", tt.cookie, got, tt.want)
		}
	}
}

func TestForwardsHeaders(t *testing.T) {
	m := startBookinfo(t, "v3", nil)
	in := map[string]string{
		"x-request-id": "rid-42", "b3": "463ac35c9f6413ad48485a3953bb6124-0020000000000001-1",
		"x-b3-traceid": "463ac35c9f6413ad48485a3953bb6124", "x-b3-spanid": "0020000000000001", "x-b3-sampled": "1",
		"traceparent": "00-463ac35c9f6413ad48485a3953bb6124-0020000000000001-01", "tracestate": "rojo=00f067aa0ba902b7",
		"x-ot-span-context": "ot", "x-datadog-trace-id": "1", "x-datadog-parent-id": "2",
		"user-agent": "forward-test/1", "cookie": "session=alice",
	}
	if status, _ := get(t, nil, m.url+"/productpage", in); status != 200 {
		t.Fatalf("status %d", status)
	}
	want := map[string]string{"end-user": "alice"}
	for k, v := range in {
		want[k] = v
	}
	for name, rc := range map[string]*recorder{"details": m.details, "reviews": m.reviews, "ratings": m.ratings} {
		reqs := rc.requests()
		if len(reqs) != 1 {
			t.Fatalf("%s called %d times", name, len(reqs))
		}
		for k, v := range want {
			if got := reqs[0].Header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got, v)
			}
		}
	}
}

// hang answers nothing until the client gives up; it counts the attempts.
type hang struct {
	mu    sync.Mutex
	calls int
}

func (h *hang) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.calls++
	h.mu.Unlock()
	<-r.Context().Done()
}

func (h *hang) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

func TestReviewsTimeoutRetriesOnce(t *testing.T) {
	rv, dt := &hang{}, &hang{}
	m := startBookinfo(t, "v1", func(c *Config) {
		c.Timeout = 50 * time.Millisecond
		c.ReviewsURL = serve(t, rv)
		c.DetailsURL = serve(t, dt)
	})
	status, body := get(t, nil, m.url+"/productpage", nil)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	if !strings.Contains(body, ReviewsUnavailable) || !strings.Contains(body, DetailsUnavailable) {
		t.Fatal("page lacks the unavailable texts")
	}
	if got := rv.count(); got != 2 {
		t.Errorf("reviews attempts %d, want 2 (one retry)", got)
	}
	if got := dt.count(); got != 1 {
		t.Errorf("details attempts %d, want 1", got)
	}
}

func TestDownstreamErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	status := func(code int) (*recorder, string) {
		rc := &recorder{next: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) })}
		return rc, serve(t, rc)
	}
	rv503, rv503URL := status(503)
	m := startBookinfo(t, "v1", func(c *Config) {
		c.ReviewsURL = rv503URL
		c.DetailsURL = closedURL
	})
	st, body := get(t, nil, m.url+"/productpage", nil)
	if st != 200 || !strings.Contains(body, ReviewsUnavailable) || !strings.Contains(body, DetailsUnavailable) {
		t.Fatalf("status %d; reviews error shown %v, details error shown %v", st,
			strings.Contains(body, ReviewsUnavailable), strings.Contains(body, DetailsUnavailable))
	}
	if n := len(rv503.requests()); n != 2 {
		t.Errorf("reviews answering 503 tried %d times, want 2", n)
	}
	// The API reports the downstream status (or 500 when nothing answered).
	for _, tt := range []struct {
		path   string
		status int
		errMsg string
	}{
		{"/api/v1/products/0/reviews", 503, ReviewsUnavailable},
		{"/api/v1/products/0", 500, DetailsUnavailable},
	} {
		st, body := get(t, nil, m.url+tt.path, nil)
		var doc map[string]string
		if err := json.Unmarshal([]byte(body), &doc); err != nil || st != tt.status || doc["error"] != tt.errMsg {
			t.Errorf("%s: %d %s", tt.path, st, body)
		}
	}
}

func TestReviewsRetrySucceeds(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	flaky := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, `{"id":"0","podname":"reviews-flaky","clustername":"null","reviews":[]}`)
	})
	m := startBookinfo(t, "v1", func(c *Config) { c.ReviewsURL = serve(t, flaky) })
	_, body := get(t, nil, m.url+"/productpage", nil)
	if !strings.Contains(body, "reviews-flaky") || strings.Contains(body, ReviewsUnavailable) {
		t.Fatal("the retry's answer is not on the page")
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Fatalf("calls %d, want 2", calls)
	}
}

func TestAPI(t *testing.T) {
	m := startBookinfo(t, "v2", nil)
	tests := []struct {
		path   string
		status int
		check  func(map[string]any) bool
	}{
		{"/api/v1/products/0", 200, func(d map[string]any) bool { return d["author"] == "William Shakespeare" && d["year"] == 1595.0 }},
		{"/api/v1/products/0/reviews", 200, func(d map[string]any) bool {
			rs, _ := d["reviews"].([]any)
			return d["podname"] == "reviews-v2" && len(rs) == 2
		}},
		{"/api/v1/products/0/ratings", 200, func(d map[string]any) bool {
			r, _ := d["ratings"].(map[string]any)
			return r["Reviewer1"] == 5.0 && r["Reviewer2"] == 4.0
		}},
		{"/api/v1/products/abc", 400, func(d map[string]any) bool { return d["error"] == DetailsUnavailable }},
		{"/api/v1/products/abc/ratings", 400, func(d map[string]any) bool { return d["error"] == RatingsUnavailable }},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			st, body := get(t, nil, m.url+tt.path, nil)
			var d map[string]any
			if err := json.Unmarshal([]byte(body), &d); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if st != tt.status || !tt.check(d) {
				t.Errorf("%d %s", st, body)
			}
		})
	}
	st, body := get(t, nil, m.url+"/api/v1/products", nil)
	var products []map[string]any
	if err := json.Unmarshal([]byte(body), &products); err != nil || st != 200 || len(products) != 1 ||
		products[0]["title"] != "The Comedy of Errors" || products[0]["id"] != 0.0 ||
		!strings.Contains(products[0]["descriptionHtml"].(string), "<b>William Shakespeare's</b>") {
		t.Errorf("products: %d %s", st, body)
	}
	if st, body := get(t, nil, m.url+"/health", nil); st != 200 || body != "Product page is healthy" {
		t.Errorf("health: %d %q", st, body)
	}
}

func BenchmarkProductPage(b *testing.B) {
	rt := httptest.NewServer(ratings.New(ratings.Config{}))
	defer rt.Close()
	rcfg, _ := reviews.Defaults("v2")
	rcfg.RatingsURL = rt.URL
	rv := httptest.NewServer(reviews.New(rcfg))
	defer rv.Close()
	dt := httptest.NewServer(details.New(details.Config{}))
	defer dt.Close()
	cfg := Defaults()
	cfg.DetailsURL, cfg.ReviewsURL, cfg.RatingsURL = dt.URL, rv.URL, rt.URL
	h := New(cfg)
	req := httptest.NewRequest(http.MethodGet, "/productpage", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
