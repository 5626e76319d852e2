// Package productpage is the Bookinfo front end, as Istio's productpage sample
// behaves: it renders /productpage from the details and reviews services,
// keeps the signed-in user in a session cookie and sends it downstream as the
// end-user header, forwards tracing headers, and serves the /api/v1 JSON API.
package productpage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mast-mesh/mast/samples/bookinfo/app/propagate"
	"github.com/mast-mesh/mast/samples/bookinfo/app/reviews"
)

// Error texts of Istio's productpage.
const (
	DetailsUnavailable = "Sorry, product details are currently unavailable for this book."
	ReviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	RatingsUnavailable = "Sorry, product ratings are currently unavailable for this book."
)

// Cookie names: SessionCookie holds the signed-in user; UserCookie carries the
// same value under the name the early Istio releases used, so cookie-matching
// routing rules from those releases keep working.
const (
	SessionCookie = "session"
	UserCookie    = "user"
)

// maxBody bounds a downstream response read by productpage.
const maxBody = 1 << 20

// Config configures productpage.
type Config struct {
	// DetailsURL, ReviewsURL and RatingsURL are the downstream base URLs,
	// e.g. http://details:9080.
	DetailsURL, ReviewsURL, RatingsURL string
	// Timeout bounds each downstream call (3 s in Istio's sample).
	Timeout time.Duration
	// ReviewsAttempts is how many times the reviews call is tried before
	// giving up (2 in Istio's sample: one try and one retry).
	ReviewsAttempts int
	// Client makes the downstream calls; nil uses a client whose transport
	// honours HTTP_PROXY.
	Client *http.Client
	// Logger receives downstream failures; nil discards them.
	Logger *slog.Logger
}

// Defaults returns Istio's settings: http://details:9080, http://reviews:9080,
// http://ratings:9080, a 3 s timeout per call and two attempts at reviews.
func Defaults() Config {
	return Config{
		DetailsURL:      "http://details:9080",
		ReviewsURL:      "http://reviews:9080",
		RatingsURL:      "http://ratings:9080",
		Timeout:         3 * time.Second,
		ReviewsAttempts: 2,
	}
}

// Product is one book of the catalogue served at /api/v1/products.
type Product struct {
	ID              int           `json:"id"`
	Title           string        `json:"title"`
	DescriptionHTML template.HTML `json:"descriptionHtml"`
}

// Products returns the catalogue: one book, as in Istio's sample.
func Products() []Product {
	return []Product{{
		ID:    0,
		Title: "The Comedy of Errors",
		DescriptionHTML: `<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: ` +
			`The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of ` +
			`his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, ` +
			`in addition to puns and word play.`,
	}}
}

// Handler serves productpage.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	tmpl   *template.Template
	mux    *http.ServeMux
}

// New returns the productpage handler for cfg.
func New(cfg Config) *Handler {
	h := &Handler{cfg: cfg, log: cfg.Logger, client: cfg.Client, tmpl: parseTemplates(), mux: http.NewServeMux()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.client == nil {
		h.client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
	}
	if h.cfg.ReviewsAttempts < 1 {
		h.cfg.ReviewsAttempts = 1
	}
	for _, u := range []*string{&h.cfg.DetailsURL, &h.cfg.ReviewsURL, &h.cfg.RatingsURL} {
		*u = strings.TrimRight(*u, "/")
	}
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("GET /index.html", h.index)
	h.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "Product page is healthy")
	})
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("GET /logout", h.logout)
	h.mux.HandleFunc("GET /productpage", h.productPage)
	h.mux.HandleFunc("GET /api/v1/products", h.apiProducts)
	h.mux.HandleFunc("GET /api/v1/products/{id}", h.apiDetails)
	h.mux.HandleFunc("GET /api/v1/products/{id}/reviews", h.apiReviews)
	h.mux.HandleFunc("GET /api/v1/products/{id}/ratings", h.apiRatings)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// User returns the signed-in user of r ("" when nobody is signed in).
func User(r *http.Request) string {
	for _, name := range [...]string{SessionCookie, UserCookie} {
		c, err := r.Cookie(name)
		if err != nil || c.Value == "" {
			continue
		}
		if u, err := url.QueryUnescape(c.Value); err == nil && u != "" {
			return u
		}
	}
	return ""
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	user := strings.TrimSpace(r.FormValue("username"))
	if user == "" {
		http.Redirect(w, r, backTo(r), http.StatusFound)
		return
	}
	v := url.QueryEscape(user)
	for _, name := range [...]string{SessionCookie, UserCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, backTo(r), http.StatusFound)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	for _, name := range [...]string{SessionCookie, UserCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, backTo(r), http.StatusFound)
}

// backTo is where login and logout send the browser: back to the referring
// page as Istio's productpage does, limited to a path on this site, or
// /productpage.
func backTo(r *http.Request) string {
	if ref, err := url.Parse(r.Referer()); err == nil && strings.HasPrefix(ref.Path, "/") &&
		!strings.HasPrefix(ref.Path, "//") && ref.Path != "/login" && ref.Path != "/logout" {
		if ref.RawQuery != "" {
			return ref.Path + "?" + ref.RawQuery
		}
		return ref.Path
	}
	return "/productpage"
}

// forwardHeaders returns the headers productpage sends downstream for r.
func forwardHeaders(r *http.Request) http.Header {
	out := make(http.Header, 8)
	propagate.Copy(out, r.Header)
	if u := User(r); u != "" {
		out["End-User"] = []string{u}
	}
	return out
}

// call GETs url with hdr within the configured timeout and returns the status
// and body; err is set when no response arrived.
func (h *Handler) call(ctx context.Context, url string, hdr http.Header) (int, []byte, error) {
	if h.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.cfg.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("request %s: %w", url, err)
	}
	req.Header = hdr.Clone()
	res, err := h.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("calling %s: %w", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return 0, nil, fmt.Errorf("reading %s: %w", url, err)
	}
	return res.StatusCode, body, nil
}

// result is a downstream answer: Status is 200 with a JSON Body, or the
// status productpage reports with Error (500 when nothing answered).
type result struct {
	Status int
	Body   []byte
	Error  string
}

func (h *Handler) fetch(ctx context.Context, url string, hdr http.Header, attempts int, unavailable string) result {
	status := 0
	for i := range attempts {
		st, body, err := h.call(ctx, url, hdr)
		if err == nil && st == http.StatusOK && json.Valid(body) {
			return result{Status: http.StatusOK, Body: body}
		}
		status = st
		if err == nil && st == http.StatusOK {
			err = errors.New("invalid JSON in the response")
			status = http.StatusInternalServerError
		}
		h.log.Warn("downstream call failed", "url", url, "attempt", i+1, "status", st, "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	return result{Status: status, Error: unavailable}
}

func (h *Handler) details(ctx context.Context, id string, hdr http.Header) result {
	return h.fetch(ctx, h.cfg.DetailsURL+"/details/"+url.PathEscape(id), hdr, 1, DetailsUnavailable)
}

func (h *Handler) reviews(ctx context.Context, id string, hdr http.Header) result {
	return h.fetch(ctx, h.cfg.ReviewsURL+"/reviews/"+url.PathEscape(id), hdr, h.cfg.ReviewsAttempts, ReviewsUnavailable)
}

func (h *Handler) ratings(ctx context.Context, id string, hdr http.Header) result {
	return h.fetch(ctx, h.cfg.RatingsURL+"/ratings/"+url.PathEscape(id), hdr, 1, RatingsUnavailable)
}

func (h *Handler) productPage(w http.ResponseWriter, r *http.Request) {
	const id = "0"
	hdr := forwardHeaders(r)
	det := h.details(r.Context(), id, hdr)
	rev := h.reviews(r.Context(), id, hdr)
	h.render(w, "productpage", buildPage(User(r), det, rev))
}

// buildPage is the product page's data from the details and reviews answers.
func buildPage(user string, det, rev result) page {
	d := page{User: user, Product: Products()[0], DetailsError: det.Error, ReviewsError: rev.Error}
	if det.Status == http.StatusOK {
		var err error
		if d.Details, err = decodeObject(det.Body); err != nil {
			d.DetailsError = DetailsUnavailable
		}
	}
	if rev.Status == http.StatusOK {
		if err := json.Unmarshal(rev.Body, &d.Reviews); err != nil {
			d.ReviewsError = ReviewsUnavailable
		}
	}
	return d
}

func (h *Handler) index(w http.ResponseWriter, _ *http.Request) {
	h.render(w, "index", indexPage{Services: []serviceRow{
		{Name: "productpage", Calls: []string{h.cfg.DetailsURL, h.cfg.ReviewsURL}},
		{Name: "details", URL: h.cfg.DetailsURL},
		{Name: "reviews", URL: h.cfg.ReviewsURL, Calls: []string{h.cfg.RatingsURL}},
		{Name: "ratings", URL: h.cfg.RatingsURL},
	}})
}

func (h *Handler) apiProducts(w http.ResponseWriter, _ *http.Request) {
	body, err := json.Marshal(Products())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, result{Status: http.StatusOK, Body: body})
}

func (h *Handler) apiDetails(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, h.details(r.Context(), r.PathValue("id"), forwardHeaders(r)))
}

func (h *Handler) apiReviews(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, h.reviews(r.Context(), r.PathValue("id"), forwardHeaders(r)))
}

func (h *Handler) apiRatings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, h.ratings(r.Context(), r.PathValue("id"), forwardHeaders(r)))
}

// writeJSON writes a downstream result: its body when it succeeded, else
// {"error": ...} with its status.
func writeJSON(w http.ResponseWriter, res result) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.Status)
	if res.Status == http.StatusOK {
		_, _ = w.Write(res.Body)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"error": res.Error})
}

// page is the data of the product page template.
type page struct {
	User         string
	Product      Product
	Details      map[string]any // details JSON (any version's field types)
	DetailsError string
	Reviews      reviews.Response
	ReviewsError string
}

// decodeObject decodes a JSON object keeping numbers as written.
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding details: %w", err)
	}
	if m == nil {
		return nil, errors.New("decoding details: not a JSON object")
	}
	return m, nil
}
