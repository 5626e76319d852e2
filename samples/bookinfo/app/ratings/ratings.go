// Package ratings is the Bookinfo ratings service (v1): star ratings per
// reviewer for a product id, held in memory, as Istio's ratings sample serves
// them. POST /ratings/<id> replaces the ratings of one product.
package ratings

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// maxBody bounds a POSTed ratings document.
const maxBody = 64 << 10

// Product is the JSON document served at /ratings/<id>.
type Product struct {
	ID      int            `json:"id"`
	Ratings map[string]int `json:"ratings"`
}

// Default returns the ratings of a product nobody has posted ratings for.
func Default(id int) Product {
	return Product{ID: id, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}}
}

// ParseRatings decodes a POSTed ratings document: a JSON object of reviewer
// name to number of stars.
func ParseRatings(b []byte) (map[string]int, error) {
	var r map[string]int
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("ratings body: %w", err)
	}
	if r == nil {
		return nil, errors.New("ratings body: want a JSON object of reviewer to stars")
	}
	return r, nil
}

// Config configures the ratings handler.
type Config struct {
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
}

// Handler serves the ratings service: GET and POST /ratings/<id>, GET /health.
type Handler struct {
	log *slog.Logger
	mux *http.ServeMux

	mu    sync.RWMutex
	added map[int]map[string]int // ratings posted by users, by product id
}

// New returns a ratings handler with no posted ratings.
func New(cfg Config) *Handler {
	h := &Handler{log: cfg.Logger, mux: http.NewServeMux(), added: map[int]map[string]int{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		h.writeJSON(w, http.StatusOK, map[string]string{"status": "Ratings is healthy"})
	})
	h.mux.HandleFunc("GET /ratings/", h.get)
	h.mux.HandleFunc("POST /ratings/", h.post)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Ratings returns the current ratings of product id.
func (h *Handler) Ratings(id int) Product {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if r, ok := h.added[id]; ok {
		return Product{ID: id, Ratings: maps.Clone(r)}
	}
	return Default(id)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id, ok := h.productID(w, r)
	if !ok {
		return
	}
	h.writeJSON(w, http.StatusOK, h.Ratings(id))
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	id, ok := h.productID(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		h.writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide valid ratings JSON"})
		return
	}
	rt, err := ParseRatings(body)
	if err != nil {
		h.log.Debug("rejected ratings", "product", id, "err", err)
		h.writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide valid ratings JSON"})
		return
	}
	h.mu.Lock()
	h.added[id] = rt
	h.mu.Unlock()
	h.writeJSON(w, http.StatusOK, h.Ratings(id))
}

func (h *Handler) productID(w http.ResponseWriter, r *http.Request) (int, bool) {
	raw := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	id, err := strconv.Atoi(raw)
	if err != nil {
		h.writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product ID"})
		return 0, false
	}
	return id, true
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.log.Debug("writing response", "err", err)
	}
}
