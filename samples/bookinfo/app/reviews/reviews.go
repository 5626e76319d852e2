// Package reviews is the Bookinfo reviews service in its three versions, as
// Istio's reviews sample behaves: v1 shows no stars, v2 calls ratings and shows
// black stars, v3 calls ratings and shows red stars. Every response names the
// instance that served it ("podname").
package reviews

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/samples/bookinfo/app/propagate"
)

// RatingsUnavailable is the rating error text Istio's reviews v2/v3 show when
// the ratings service cannot be reached or answers with an error.
const RatingsUnavailable = "Ratings service is currently unavailable"

// Review texts of Istio's sample.
const (
	Reviewer1Text = "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"
	Reviewer2Text = "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."
)

// maxRatingsBody bounds the ratings response read by reviews.
const maxRatingsBody = 1 << 20

// Response is the JSON document served at /reviews/<id>.
type Response struct {
	ID          string   `json:"id"`
	PodName     string   `json:"podname"`
	ClusterName string   `json:"clustername"`
	Reviews     []Review `json:"reviews"`
}

// Review is one reviewer's review; Rating is absent in v1.
type Review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *Rating `json:"rating,omitempty"`
}

// Rating is a review's stars and their colour, or an error when the ratings
// service failed.
type Rating struct {
	Stars int    `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

// Config configures one reviews instance.
type Config struct {
	// Version is v1, v2 or v3 (informational once the fields below are set).
	Version string
	// Instance is the name reported as "podname", e.g. "reviews-v2".
	Instance string
	// ClusterName is reported as "clustername" ("null" when empty, as Istio's).
	ClusterName string
	// Ratings enables the call to the ratings service (false in v1).
	Ratings bool
	// StarColor is the colour of the stars ("black" in v2, "red" in v3).
	StarColor string
	// RatingsURL is the ratings service base URL, e.g. http://ratings:9080.
	RatingsURL string
	// RatingsTimeout bounds the call to ratings (10 s in v2, 2.5 s in v3).
	RatingsTimeout time.Duration
	// Client makes the call to ratings; nil uses a client whose transport
	// honours HTTP_PROXY.
	Client *http.Client
	// Logger receives downstream failures; nil discards them.
	Logger *slog.Logger
}

// Defaults returns the configuration of a reviews version as Istio's sample
// sets it (ENABLE_RATINGS, STAR_COLOR and the timeout derived from the colour),
// with the ratings URL http://ratings:9080 and instance "reviews-VERSION".
func Defaults(version string) (Config, error) {
	c := Config{Version: version, Instance: "reviews-" + version, RatingsURL: "http://ratings:9080"}
	switch version {
	case "v1":
		c.StarColor = "black"
		c.RatingsTimeout = 10 * time.Second
	case "v2":
		c.Ratings, c.StarColor, c.RatingsTimeout = true, "black", 10*time.Second
	case "v3":
		c.Ratings, c.StarColor, c.RatingsTimeout = true, "red", 2500*time.Millisecond
	default:
		return Config{}, fmt.Errorf("reviews version %q: want v1, v2 or v3", version)
	}
	return c, nil
}

// Handler serves the reviews service: GET /reviews/<id> and GET /health.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	mux    *http.ServeMux
}

// New returns a reviews handler for cfg.
func New(cfg Config) *Handler {
	h := &Handler{cfg: cfg, log: cfg.Logger, client: cfg.Client, mux: http.NewServeMux()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.client == nil {
		h.client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
	}
	if h.cfg.ClusterName == "" {
		h.cfg.ClusterName = "null"
	}
	h.cfg.RatingsURL = strings.TrimRight(h.cfg.RatingsURL, "/")
	h.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status": "Reviews is healthy"}`)
	})
	h.mux.HandleFunc("GET /reviews/{id}", h.reviews)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) reviews(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		// Istio's JAX-RS endpoint takes an int path parameter: anything else is not found.
		http.NotFound(w, r)
		return
	}
	stars := map[string]int(nil)
	if h.cfg.Ratings {
		stars, err = h.fetchRatings(r, id)
		if err != nil {
			h.log.Warn("ratings unavailable", "url", h.cfg.RatingsURL, "product", id, "err", err)
		}
	}
	resp := h.build(id, stars)
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		h.log.Debug("writing response", "err", err)
	}
}

// build assembles the response; stars holds the ratings by reviewer (nil when
// ratings failed or are disabled).
func (h *Handler) build(id int, stars map[string]int) Response {
	resp := Response{
		ID:          strconv.Itoa(id),
		PodName:     h.cfg.Instance,
		ClusterName: h.cfg.ClusterName,
		Reviews: []Review{
			{Reviewer: "Reviewer1", Text: Reviewer1Text},
			{Reviewer: "Reviewer2", Text: Reviewer2Text},
		},
	}
	if !h.cfg.Ratings {
		return resp
	}
	for i := range resp.Reviews {
		if s, ok := stars[resp.Reviews[i].Reviewer]; ok {
			resp.Reviews[i].Rating = &Rating{Stars: s, Color: h.cfg.StarColor}
		} else {
			resp.Reviews[i].Rating = &Rating{Error: RatingsUnavailable}
		}
	}
	return resp
}

// fetchRatings calls GET RATINGS/ratings/<id>, forwarding the tracing and user
// headers of r, within the configured timeout.
func (h *Handler) fetchRatings(r *http.Request, id int) (map[string]int, error) {
	ctx := r.Context()
	if h.cfg.RatingsTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.cfg.RatingsTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.cfg.RatingsURL+"/ratings/"+strconv.Itoa(id), nil)
	if err != nil {
		return nil, fmt.Errorf("ratings request: %w", err)
	}
	propagate.Copy(req.Header, r.Header)
	req.Header.Set("Accept", "application/json")
	res, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling ratings: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxRatingsBody))
	if err != nil {
		return nil, fmt.Errorf("reading ratings response: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ratings answered %s", res.Status)
	}
	return ParseRatings(body)
}

// ParseRatings decodes the ratings service's answer and returns its stars by
// reviewer. A document without a "ratings" object is an error.
func ParseRatings(body []byte) (map[string]int, error) {
	var doc struct {
		Ratings map[string]int `json:"ratings"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decoding ratings response: %w", err)
	}
	if doc.Ratings == nil {
		return nil, errors.New(`ratings response has no "ratings" object`)
	}
	return doc.Ratings, nil
}
