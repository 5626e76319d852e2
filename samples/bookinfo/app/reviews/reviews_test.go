package reviews

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mast-mesh/mast/samples/bookinfo/app/ratings"
)

func getReviews(t *testing.T, url string, hdr map[string]string) (int, Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var r Response
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
	}
	return res.StatusCode, r
}

func newReviews(t *testing.T, version, ratingsURL string, edit func(*Config)) string {
	t.Helper()
	cfg, err := Defaults(version)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RatingsURL = ratingsURL
	cfg.Instance = "reviews-" + version + "-test"
	if edit != nil {
		edit(&cfg)
	}
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestVersions(t *testing.T) {
	rt := httptest.NewServer(ratings.New(ratings.Config{}))
	defer rt.Close()
	tests := []struct {
		version string
		rating  *Rating // of Reviewer1; Reviewer2 gets 4 stars in the same colour
		color   string
	}{
		{"v1", nil, ""},
		{"v2", &Rating{Stars: 5, Color: "black"}, "black"},
		{"v3", &Rating{Stars: 5, Color: "red"}, "red"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			url := newReviews(t, tt.version, rt.URL, nil)
			status, r := getReviews(t, url+"/reviews/0", nil)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			if r.ID != "0" || r.PodName != "reviews-"+tt.version+"-test" || r.ClusterName != "null" {
				t.Errorf("id %q podname %q clustername %q", r.ID, r.PodName, r.ClusterName)
			}
			if len(r.Reviews) != 2 || r.Reviews[0].Reviewer != "Reviewer1" || r.Reviews[0].Text != Reviewer1Text ||
				r.Reviews[1].Reviewer != "Reviewer2" || r.Reviews[1].Text != Reviewer2Text {
				t.Fatalf("reviews %+v", r.Reviews)
			}
			if tt.rating == nil {
				if r.Reviews[0].Rating != nil || r.Reviews[1].Rating != nil {
					t.Errorf("v1 has ratings: %+v", r.Reviews)
				}
				return
			}
			if got := r.Reviews[0].Rating; got == nil || *got != *tt.rating {
				t.Errorf("Reviewer1 rating %+v, want %+v", got, tt.rating)
			}
			if got := r.Reviews[1].Rating; got == nil || *got != (Rating{Stars: 4, Color: tt.color}) {
				t.Errorf("Reviewer2 rating %+v", got)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		version string
		ratings bool
		color   string
		timeout time.Duration
		wantErr bool
	}{
		{"v1", false, "black", 10 * time.Second, false},
		{"v2", true, "black", 10 * time.Second, false},
		{"v3", true, "red", 2500 * time.Millisecond, false},
		{"v4", false, "", 0, true},
		{"", false, "", 0, true},
	}
	for _, tt := range tests {
		c, err := Defaults(tt.version)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err %v", tt.version, err)
			continue
		}
		if c.Ratings != tt.ratings || c.StarColor != tt.color || c.RatingsTimeout != tt.timeout {
			t.Errorf("%q: %+v", tt.version, c)
		}
		if !tt.wantErr && (c.RatingsURL != "http://ratings:9080" || c.Instance != "reviews-"+tt.version) {
			t.Errorf("%q: url %q instance %q", tt.version, c.RatingsURL, c.Instance)
		}
	}
}

func TestRatingsFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	release := make(chan struct{})
	defer close(release)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	answer := func(status int, body string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			io.WriteString(w, body)
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		want    [2]Rating
	}{
		{"connection refused", closedURL, 0, [2]Rating{{Error: RatingsUnavailable}, {Error: RatingsUnavailable}}},
		{"503", answer(503, `{"error":"Service unavailable"}`), 0, [2]Rating{{Error: RatingsUnavailable}, {Error: RatingsUnavailable}}},
		{"malformed", answer(200, `{"ratings":`), 0, [2]Rating{{Error: RatingsUnavailable}, {Error: RatingsUnavailable}}},
		{"no ratings object", answer(200, `{"id":0}`), 0, [2]Rating{{Error: RatingsUnavailable}, {Error: RatingsUnavailable}}},
		{"one reviewer missing", answer(200, `{"id":0,"ratings":{"Reviewer2":2}}`), 0, [2]Rating{{Error: RatingsUnavailable}, {Stars: 2, Color: "red"}}},
		{"timeout", hang.URL, 50 * time.Millisecond, [2]Rating{{Error: RatingsUnavailable}, {Error: RatingsUnavailable}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := newReviews(t, "v3", tt.url, func(c *Config) {
				if tt.timeout > 0 {
					c.RatingsTimeout = tt.timeout
				}
			})
			status, r := getReviews(t, url+"/reviews/0", nil)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			for i := range 2 {
				if got := r.Reviews[i].Rating; got == nil || *got != tt.want[i] {
					t.Errorf("review %d rating %+v, want %+v", i, got, tt.want[i])
				}
			}
		})
	}
}

// recorder stands in for ratings and keeps the headers it was called with.
type recorder struct {
	mu   sync.Mutex
	hdrs []http.Header
	path []string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.hdrs = append(rc.hdrs, r.Header.Clone())
	rc.path = append(rc.path, r.URL.Path)
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`)
}

func TestForwardsHeadersToRatings(t *testing.T) {
	rc := &recorder{}
	rs := httptest.NewServer(rc)
	defer rs.Close()
	url := newReviews(t, "v2", rs.URL, nil)
	in := map[string]string{
		"x-request-id": "req-1", "b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "congo=t61rcWkgMzE",
		"x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid": "e457b5a2e4d86bd1", "x-b3-sampled": "1",
		"x-datadog-trace-id": "123", "end-user": "jason", "user-agent": "bookinfo-test", "cookie": "session=jason",
	}
	if status, _ := getReviews(t, url+"/reviews/7", merge(in, map[string]string{"x-not-forwarded": "no"})); status != 200 {
		t.Fatalf("status %d", status)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.hdrs) != 1 || rc.path[0] != "/ratings/7" {
		t.Fatalf("ratings calls %v", rc.path)
	}
	for k, v := range in {
		if got := rc.hdrs[0].Get(k); got != v {
			t.Errorf("%s reached ratings as %q, want %q", k, got, v)
		}
	}
	if got := rc.hdrs[0].Get("x-not-forwarded"); got != "" {
		t.Errorf("unlisted header forwarded: %q", got)
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestV1DoesNotCallRatings(t *testing.T) {
	rc := &recorder{}
	rs := httptest.NewServer(rc)
	defer rs.Close()
	url := newReviews(t, "v1", rs.URL, nil)
	getReviews(t, url+"/reviews/0", nil)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.hdrs) != 0 {
		t.Fatalf("v1 called ratings %d times", len(rc.hdrs))
	}
}

func TestPaths(t *testing.T) {
	url := newReviews(t, "v1", "http://127.0.0.1:1", nil)
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/health", 200, `{"status": "Reviews is healthy"}`},
		{"/reviews/abc", 404, ""},
		{"/reviews/1", 200, ""},
		{"/other", 404, ""},
	}
	for _, tt := range tests {
		res, err := http.Get(url + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tt.status || (tt.body != "" && string(b) != tt.body) {
			t.Errorf("%s: %d %s", tt.path, res.StatusCode, b)
		}
	}
}

func FuzzParseRatings(f *testing.F) {
	for _, s := range []string{
		`{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`, `{"id":0}`, `{"ratings":null}`, `{"ratings":{"a":"b"}}`,
		`[]`, `null`, ``, `{"ratings":{}}`, `{"error":"Service unavailable"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRatings(b)
		if (err == nil) == (r == nil) {
			t.Fatalf("ratings %v with err %v", r, err)
		}
	})
}

func BenchmarkReviewsV2(b *testing.B) {
	rt := httptest.NewServer(ratings.New(ratings.Config{}))
	defer rt.Close()
	cfg, _ := Defaults("v2")
	cfg.RatingsURL = rt.URL
	h := New(cfg)
	req := httptest.NewRequest(http.MethodGet, "/reviews/0", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
