// Package details is the Bookinfo details service (v1): book information for a
// product id, as Istio's details sample serves it.
package details

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Book is the JSON document served at /details/<id>; field names and values
// follow Istio's details service.
type Book struct {
	ID        int    `json:"id"`
	Author    string `json:"author"`
	Year      int    `json:"year"`
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
}

// BookFor returns the details of product id: every id describes the same
// book, as in Istio's sample.
func BookFor(id int) Book {
	return Book{
		ID:        id,
		Author:    "William Shakespeare",
		Year:      1595,
		Type:      "paperback",
		Pages:     200,
		Publisher: "PublisherA",
		Language:  "English",
		ISBN10:    "1234567890",
		ISBN13:    "123-1234567890",
	}
}

// Config configures the details handler.
type Config struct {
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
}

// New returns the details service: GET /details/<id> and GET /health.
func New(cfg Config) http.Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "Details is healthy"}, log)
	})
	mux.HandleFunc("GET /details/", func(w http.ResponseWriter, r *http.Request) {
		raw := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		id, err := strconv.Atoi(raw)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"}, log)
			return
		}
		writeJSON(w, http.StatusOK, BookFor(id), log)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any, log *slog.Logger) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Debug("writing response", "err", err)
	}
}
