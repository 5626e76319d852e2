package ads

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Sync states of one type on one proxy, as Istio's proxy-status shows them.
const (
	StateSynced  = "SYNCED"   // the latest response was ACKed
	StateNACKed  = "NACKED"   // the latest response was rejected
	StateStale   = "STALE"    // the latest response is not yet ACKed or NACKed
	StateNotSent = "NOT SENT" // subscribed, nothing sent yet
)

// ProxyStatus is the xDS state of one connected proxy (one stream).
type ProxyStatus struct {
	ID             string    `json:"id"`
	ConnectionID   string    `json:"connectionId"`
	Namespace      string    `json:"namespace"`
	ConnectedSince time.Time `json:"connectedSince"`
	Stream         string    `json:"stream"` // "sotw" or "delta"
	// Version is the proxy's build, from its node's ISTIO_VERSION metadata.
	Version     string       `json:"version,omitempty"`
	PushPending bool         `json:"pushPending"`
	Sending     string       `json:"sending,omitempty"` // type URL of a response in flight
	Types       []TypeStatus `json:"types"`
}

// TypeStatus is the state of one resource type on one proxy.
type TypeStatus struct {
	TypeURL      string    `json:"typeUrl"`
	State        string    `json:"state"`
	VersionSent  string    `json:"versionSent"`
	VersionAcked string    `json:"versionAcked"`
	NonceSent    string    `json:"nonceSent"`
	NonceAcked   string    `json:"nonceAcked"`
	LastNACK     string    `json:"lastNack,omitempty"`
	LastNACKTime time.Time `json:"lastNackTime,omitzero"`
	LastError    string    `json:"lastError,omitempty"` // last generation failure
	Wildcard     bool      `json:"wildcard"`
	Subscribed   []string  `json:"subscribed,omitempty"`
	Resources    int       `json:"resources"`
	BytesSent    int64     `json:"bytesSent"`
	Responses    int64     `json:"responses"`
}

// Status returns every connected proxy, sorted by proxy ID then connection.
func (s *Server) Status() []ProxyStatus {
	s.mu.RLock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.RUnlock()
	out := make([]ProxyStatus, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.status())
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int {
		if d := strings.Compare(a.ID, b.ID); d != 0 {
			return d
		}
		return strings.Compare(a.ConnectionID, b.ConnectionID)
	})
	return out
}

func (c *conn) status() ProxyStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := ProxyStatus{
		ID:             c.proxy.ID,
		ConnectionID:   c.id,
		Namespace:      c.proxy.Namespace,
		ConnectedSince: c.connectedAt,
		Stream:         c.kind,
		Version:        c.proxy.Metadata["ISTIO_VERSION"],
		PushPending:    c.pending != nil,
		Sending:        c.sending,
	}
	for _, w := range c.orderedWatches() {
		ts := TypeStatus{
			TypeURL:      w.typeURL,
			VersionSent:  w.versionSent,
			VersionAcked: w.versionAcked,
			NonceSent:    w.nonceSent,
			NonceAcked:   w.nonceAcked,
			LastNACK:     w.lastNACK,
			LastNACKTime: w.lastNACKAt,
			LastError:    w.lastError,
			Wildcard:     w.wildcard,
			Subscribed:   w.sortedNames(),
			Resources:    w.resources,
			BytesSent:    w.bytesSent,
			Responses:    w.responses,
		}
		ts.State = syncState(w.nonceSent, w.nonceAcked, w.nonceNacked)
		ps.Types = append(ps.Types, ts)
	}
	return ps
}

// syncState is the state of one type from the nonce of the latest response
// and the nonces the proxy last acknowledged and rejected.
func syncState(sent, acked, nacked string) string {
	switch {
	case sent == "":
		return StateNotSent
	case acked == sent:
		return StateSynced
	case nacked == sent:
		return StateNACKed
	default:
		return StateStale
	}
}

// SynczHandler serves Status as JSON (Istio's /debug/syncz). The optional
// query parameter proxy=ID limits the output to that proxy.
func (s *Server) SynczHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r, "syncz") {
			return
		}
		st := s.Status()
		if id := r.URL.Query().Get("proxy"); id != "" {
			st = slices.DeleteFunc(st, func(p ProxyStatus) bool { return p.ID != id })
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st) // a write error means the client went away
	})
}

// readOnly answers a method other than GET or HEAD with 405 naming the
// page, and says whether the request may go on.
func readOnly(w http.ResponseWriter, r *http.Request, page string) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, page+": method not allowed", http.StatusMethodNotAllowed)
	return false
}
