package productpage

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const detailsJSON = `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`

func reviewsJSON(pod, rating1, rating2 string) string {
	r1, r2 := "", ""
	if rating1 != "" {
		r1 = `,"rating":` + rating1
	}
	if rating2 != "" {
		r2 = `,"rating":` + rating2
	}
	return `{"id":"0","podname":"` + pod + `","clustername":"null","reviews":[` +
		`{"reviewer":"Reviewer1","text":"An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"` + r1 + `},` +
		`{"reviewer":"Reviewer2","text":"Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."` + r2 + `}]}`
}

func ok(body string) result { return result{Status: 200, Body: []byte(body)} }

func TestRenderGolden(t *testing.T) {
	h := New(Config{})
	unavailable := `{"error":"Ratings service is currently unavailable"}`
	tests := []struct {
		name      string
		user      string
		det, rev  result
		contains  []string
		forbidden []string
	}{
		{"v1", "", ok(detailsJSON), ok(reviewsJSON("reviews-v1", "", "")),
			[]string{"<title>Simple Bookstore App</title>", "The Comedy of Errors", "<b>William Shakespeare's</b>", "Book Details", "paperback", "PublisherA", "123-1234567890", "Reviewer1", "Reviewer2", "reviews-v1", "Sign in"},
			[]string{"glyphicon-star", "Signed in as"}},
		{"v2", "", ok(detailsJSON), ok(reviewsJSON("reviews-v2", `{"stars":5,"color":"black"}`, `{"stars":4,"color":"black"}`)),
			[]string{`<font color="black"`, "glyphicon-star-empty", "reviews-v2"}, []string{`color="red"`}},
		{"v3", "", ok(detailsJSON), ok(reviewsJSON("reviews-v3", `{"stars":5,"color":"red"}`, `{"stars":4,"color":"red"}`)),
			[]string{`<font color="red"`, "reviews-v3"}, []string{`color="black"`}},
		{"ratings-unavailable", "", ok(detailsJSON), ok(reviewsJSON("reviews-v2", unavailable, unavailable)),
			[]string{"<i>Ratings service is currently unavailable</i>"}, []string{"glyphicon-star"}},
		{"signed-in", "jason", ok(detailsJSON), ok(reviewsJSON("reviews-v2", `{"stars":5,"color":"black"}`, `{"stars":4,"color":"black"}`)),
			[]string{"Signed in as jason", `href="logout"`}, []string{"login_form"}},
		{"escaped-user", `<script>x</script>`, ok(detailsJSON), ok(reviewsJSON("reviews-v1", "", "")),
			[]string{"Signed in as &lt;script&gt;x&lt;/script&gt;"}, []string{"<script>x"}},
		{"errors", "", result{Status: 503, Error: DetailsUnavailable}, result{Status: 500, Error: ReviewsUnavailable},
			[]string{"Error fetching product details!", DetailsUnavailable, "Error fetching product reviews!", ReviewsUnavailable},
			[]string{"Book Details", "Book Reviews"}},
		{"malformed-downstream", "", ok(`[1,2]`), ok(`{"reviews":"no"}`),
			[]string{DetailsUnavailable, ReviewsUnavailable}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.render(w, "productpage", buildPage(tt.user, tt.det, tt.rev))
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			got := w.Body.String()
			for _, s := range tt.contains {
				if !strings.Contains(got, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tt.forbidden {
				if strings.Contains(got, s) {
					t.Errorf("page contains %q", s)
				}
			}
			golden(t, filepath.Join("testdata", tt.name+".golden.html"), w.Body.Bytes())
		})
	}
}

func TestStarCounts(t *testing.T) {
	h := New(Config{})
	tests := []struct{ stars, full, empty int }{{5, 5, 0}, {4, 4, 1}, {1, 1, 4}, {9, 5, 0}, {-2, 0, 5}, {0, 0, 0}}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		rating := `{"stars":` + itoa(tt.stars) + `,"color":"red"}`
		h.render(w, "productpage", buildPage("", ok(detailsJSON), ok(reviewsJSON("r", rating, ""))))
		body := w.Body.String()
		full := strings.Count(body, `"glyphicon glyphicon-star"`)
		empty := strings.Count(body, `"glyphicon glyphicon-star-empty"`)
		if full != tt.full || empty != tt.empty {
			t.Errorf("stars %d: %d full, %d empty; want %d, %d", tt.stars, full, empty, tt.full, tt.empty)
		}
	}
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	return string(rune('0' + n))
}

func TestIndex(t *testing.T) {
	cfg := Defaults()
	srv := httptest.NewServer(New(cfg))
	defer srv.Close()
	for _, path := range []string{"/", "/index.html"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		res.Body.Close()
		for _, s := range []string{"Simple Bookstore App", "http://details:9080", "http://reviews:9080", "http://ratings:9080", `href="productpage?u=normal"`} {
			if !strings.Contains(b.String(), s) {
				t.Errorf("%s lacks %q", path, s)
			}
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered page (run go test -update if the change is intended):\n%s", path, got)
	}
}

func FuzzRender(f *testing.F) {
	f.Add([]byte(detailsJSON), []byte(reviewsJSON("reviews-v2", `{"stars":5,"color":"black"}`, `{"error":"x"}`)))
	f.Add([]byte(`null`), []byte(`null`))
	f.Add([]byte(`{"type":{"a":[1]}}`), []byte(`{"reviews":[{"rating":{"stars":-1}}]}`))
	f.Add([]byte(`{`), []byte(`{"reviews":[{"rating":{"stars":100000000000}}]}`))
	h := New(Config{})
	f.Fuzz(func(t *testing.T, det, rev []byte) {
		w := httptest.NewRecorder()
		h.render(w, "productpage", buildPage("u", result{Status: 200, Body: det}, result{Status: 200, Body: rev}))
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if !strings.Contains(w.Body.String(), "The Comedy of Errors") {
			t.Fatal("page lost its title")
		}
	})
}

func BenchmarkRender(b *testing.B) {
	h := New(Config{})
	det := ok(detailsJSON)
	rev := ok(reviewsJSON("reviews-v2", `{"stars":5,"color":"black"}`, `{"stars":4,"color":"black"}`))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.render(w, "productpage", buildPage("jason", det, rev))
	}
}
