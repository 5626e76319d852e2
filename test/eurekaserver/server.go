// Package eurekaserver is a Eureka server for tests and `mast up --platform
// eureka`: no Eureka server can be obtained here (it is a Java program), so
// this one implements the REST API v2 operations Eureka's wiki documents
// ("Eureka REST operations"), with Eureka 1.x's behaviour: registration,
// renewal (404 for an unknown instance, so that clients register again),
// cancellation, status overrides and their removal, metadata updates,
// lease expiry, a recently-changed queue served as /apps/delta with the
// reconcile hash, vip and svip lookups, JSON and XML by the Accept header.
// Its faithfulness is checked by two clients written by others: hudl/fargo
// (Go) and eureka-js-client (Node), in this package's tests.
package eurekaserver

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/registry/eureka"
)

// Config tunes the server; zero values are Eureka's defaults.
type Config struct {
	// DeltaRetention is how long a change stays in /apps/delta (3m).
	DeltaRetention time.Duration
	// EvictionInterval is how often expired leases are evicted (60s); a
	// lease expires durationInSecs (default 90) after its last renewal.
	EvictionInterval time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Server is a Eureka server; it is an http.Handler serving /eureka/v2/.
type Server struct {
	cfg  Config
	stop chan struct{}
	once sync.Once

	mu        sync.Mutex
	apps      map[string]map[string]*eureka.Instance // APP -> id -> instance
	overrides map[string]string                      // id -> overridden status
	recent    []change
	version   int
	// skipDelta, for tests, leaves the next delta out of the queue so
	// that a client applying deltas ends with the wrong hash.
	skipDelta bool
}

type change struct {
	at time.Time
	in eureka.Instance // a copy, with its action type
}

// New returns a server; Close stops its eviction.
func New(cfg Config) *Server {
	if cfg.DeltaRetention <= 0 {
		cfg.DeltaRetention = 3 * time.Minute
	}
	if cfg.EvictionInterval <= 0 {
		cfg.EvictionInterval = 60 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, stop: make(chan struct{}), apps: map[string]map[string]*eureka.Instance{}, overrides: map[string]string{}}
	go s.evictLoop()
	return s
}

// Close stops the eviction loop.
func (s *Server) Close() { s.once.Do(func() { close(s.stop) }) }

// LoseNextDelta makes the next change miss /apps/delta (as a change lost
// between a server's replicas would), so clients' hashes stop matching.
func (s *Server) LoseNextDelta() {
	s.mu.Lock()
	s.skipDelta = true
	s.mu.Unlock()
}

func (s *Server) evictLoop() {
	t := time.NewTicker(s.cfg.EvictionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Evict()
		}
	}
}

// Evict cancels every instance whose lease expired.
func (s *Server) Evict() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	for app, m := range s.apps {
		for id, i := range m {
			dur := time.Duration(cmp.Or(i.LeaseInfo.DurationInSecs, 90)) * time.Second
			if now.After(time.UnixMilli(i.LeaseInfo.LastRenewalTimestamp).Add(dur)) {
				s.cancelLocked(app, id)
			}
		}
	}
}

func (s *Server) millis() int64 { return s.cfg.Now().UnixMilli() }

// record adds a change to the recently-changed queue.
func (s *Server) record(i *eureka.Instance, action string) {
	s.version++
	i.ActionType = action
	i.LastUpdated = s.millis()
	if s.skipDelta {
		s.skipDelta = false
		return
	}
	c := *i
	s.recent = append(s.recent, change{at: s.cfg.Now(), in: c})
}

func (s *Server) cancelLocked(app, id string) bool {
	i, ok := s.apps[app][id]
	if !ok {
		return false
	}
	delete(s.apps[app], id)
	if len(s.apps[app]) == 0 {
		delete(s.apps, app)
	}
	delete(s.overrides, id)
	i.LeaseInfo.EvictionTimestamp = s.millis()
	s.record(i, eureka.ActionDeleted)
	return true
}

// ServeHTTP serves the REST API under /eureka/v2/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/eureka/v2/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	q := r.URL.Query()
	switch {
	case parts[0] == "apps" && len(parts) == 1 && r.Method == http.MethodGet:
		s.writeApps(w, r, s.all())
	case parts[0] == "apps" && len(parts) == 2 && parts[1] == "delta" && r.Method == http.MethodGet:
		s.writeApps(w, r, s.delta())
	case parts[0] == "apps" && len(parts) == 2 && r.Method == http.MethodPost:
		s.register(w, r, strings.ToUpper(parts[1]))
	case parts[0] == "apps" && len(parts) == 2 && r.Method == http.MethodGet:
		s.getApp(w, r, strings.ToUpper(parts[1]))
	case parts[0] == "apps" && len(parts) == 3 && r.Method == http.MethodGet:
		s.getInstance(w, r, strings.ToUpper(parts[1]), parts[2])
	case parts[0] == "apps" && len(parts) == 3 && r.Method == http.MethodPut:
		s.renew(w, r, strings.ToUpper(parts[1]), parts[2], q)
	case parts[0] == "apps" && len(parts) == 3 && r.Method == http.MethodDelete:
		s.mu.Lock()
		ok := s.cancelLocked(strings.ToUpper(parts[1]), parts[2])
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	case parts[0] == "apps" && len(parts) == 4 && parts[3] == "status" && r.Method == http.MethodPut:
		s.setStatus(w, r, strings.ToUpper(parts[1]), parts[2], q.Get("value"))
	case parts[0] == "apps" && len(parts) == 4 && parts[3] == "status" && r.Method == http.MethodDelete:
		s.deleteOverride(w, r, strings.ToUpper(parts[1]), parts[2], q.Get("value"))
	case parts[0] == "apps" && len(parts) == 4 && parts[3] == "metadata" && r.Method == http.MethodPut:
		s.updateMetadata(w, r, strings.ToUpper(parts[1]), parts[2], q)
	case parts[0] == "instances" && len(parts) == 2 && r.Method == http.MethodGet:
		s.getInstance(w, r, "", parts[1])
	case (parts[0] == "vips" || parts[0] == "svips") && len(parts) == 2 && r.Method == http.MethodGet:
		s.writeApps(w, r, s.byVIP(parts[1], parts[0] == "svips"))
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// wantsJSON: Eureka answers JSON when the Accept header asks for it, XML
// otherwise (its resources produce XML first).
func wantsJSON(r *http.Request) bool { return strings.Contains(r.Header.Get("Accept"), "json") }

func (s *Server) snapshotLocked() []*eureka.Application {
	var out []*eureka.Application
	for _, name := range slices.Sorted(maps.Keys(s.apps)) {
		a := &eureka.Application{Name: name}
		for _, id := range slices.Sorted(maps.Keys(s.apps[name])) {
			c := *s.apps[name][id]
			a.Instances = append(a.Instances, &c)
		}
		out = append(out, a)
	}
	return out
}

func (s *Server) all() *eureka.Applications {
	s.mu.Lock()
	defer s.mu.Unlock()
	apps := s.snapshotLocked()
	return &eureka.Applications{VersionsDelta: strconv.Itoa(s.version), AppsHashcode: eureka.HashCode(apps), Applications: apps}
}

// delta is the recently changed queue (retention applied), grouped by
// application, with the hash of the whole registry.
func (s *Server) delta() *eureka.Applications {
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := s.cfg.Now().Add(-s.cfg.DeltaRetention)
	keep := s.recent[:0]
	for _, c := range s.recent {
		if c.at.After(cutoff) {
			keep = append(keep, c)
		}
	}
	s.recent = keep
	byApp := map[string]*eureka.Application{}
	var apps []*eureka.Application
	for _, c := range s.recent {
		a := byApp[c.in.App]
		if a == nil {
			a = &eureka.Application{Name: c.in.App}
			byApp[c.in.App] = a
			apps = append(apps, a)
		}
		in := c.in
		a.Instances = append(a.Instances, &in)
	}
	return &eureka.Applications{VersionsDelta: strconv.Itoa(s.version), AppsHashcode: eureka.HashCode(s.snapshotLocked()), Applications: apps}
}

func (s *Server) byVIP(vip string, secure bool) *eureka.Applications {
	all := s.all()
	var out []*eureka.Application
	for _, a := range all.Applications {
		var ins []*eureka.Instance
		for _, i := range a.Instances {
			v := i.VIPAddress
			if secure {
				v = i.SecureVIPAddress
			}
			for _, one := range strings.Split(v, ",") {
				if strings.EqualFold(strings.TrimSpace(one), vip) {
					ins = append(ins, i)
					break
				}
			}
		}
		if len(ins) > 0 {
			out = append(out, &eureka.Application{Name: a.Name, Instances: ins})
		}
	}
	return &eureka.Applications{VersionsDelta: all.VersionsDelta, AppsHashcode: eureka.HashCode(out), Applications: out}
}

func (s *Server) writeApps(w http.ResponseWriter, r *http.Request, apps *eureka.Applications) {
	var b []byte
	var err error
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		b, err = eureka.EncodeApplicationsJSON(apps)
	} else {
		w.Header().Set("Content-Type", "application/xml")
		b, err = eureka.EncodeApplicationsXML(apps)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(b)
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request, app string) {
	s.mu.Lock()
	var found *eureka.Application
	for _, a := range s.snapshotLocked() {
		if a.Name == app {
			found = a
		}
	}
	s.mu.Unlock()
	if found == nil {
		http.NotFound(w, r)
		return
	}
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"application": found})
		return
	}
	b, _ := eureka.EncodeApplicationXML(found)
	w.Header().Set("Content-Type", "application/xml")
	w.Write(b)
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request, app, id string) {
	s.mu.Lock()
	var found *eureka.Instance
	for name, m := range s.apps {
		if i, ok := m[id]; ok && (app == "" || app == name) {
			c := *i
			found = &c
		}
	}
	s.mu.Unlock()
	if found == nil {
		http.NotFound(w, r)
		return
	}
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"instance": found})
		return
	}
	b, _ := eureka.EncodeInstanceXML(found)
	w.Header().Set("Content-Type", "application/xml")
	w.Write(b)
}

// register adds or replaces an instance (POST /apps/APP, 204). The body is
// {"instance": {...}} in JSON or <instance> in XML, by Content-Type.
func (s *Server) register(w http.ResponseWriter, r *http.Request, app string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in *eureka.Instance
	if strings.Contains(r.Header.Get("Content-Type"), "json") {
		var j struct {
			Instance *eureka.Instance `json:"instance"`
		}
		if err = json.Unmarshal(body, &j); err == nil && j.Instance == nil {
			err = fmt.Errorf(`no "instance"`)
		}
		in = j.Instance
	} else {
		in, err = eureka.DecodeInstanceXML(body)
	}
	if err != nil {
		http.Error(w, "bad instance: "+err.Error(), http.StatusBadRequest)
		return
	}
	// Eureka 1.x's ApplicationResource.addInstance validation.
	switch {
	case in.ID() == "":
		err = fmt.Errorf("missing instanceId")
	case in.HostName == "":
		err = fmt.Errorf("missing hostName")
	case in.IPAddr == "":
		err = fmt.Errorf("missing ip address")
	case !strings.EqualFold(in.App, app):
		err = fmt.Errorf("mismatched appName, expecting %s but was %s", app, in.App)
	case in.DataCenterInfo.Name == "":
		err = fmt.Errorf("missing dataCenterInfo Name")
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	in.App = app
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.millis()
	id := in.ID()
	action := eureka.ActionAdded
	if old, ok := s.apps[app][id]; ok {
		action = eureka.ActionModified
		in.LeaseInfo.ServiceUpTimestamp = old.LeaseInfo.ServiceUpTimestamp
	}
	in.LeaseInfo.RenewalIntervalInSecs = cmp.Or(in.LeaseInfo.RenewalIntervalInSecs, 30)
	in.LeaseInfo.DurationInSecs = cmp.Or(in.LeaseInfo.DurationInSecs, 90)
	in.LeaseInfo.RegistrationTimestamp, in.LeaseInfo.LastRenewalTimestamp, in.LeaseInfo.EvictionTimestamp = now, now, 0
	in.Status = cmp.Or(in.Status, eureka.StatusUp)
	if ov, ok := s.overrides[id]; ok {
		in.OverriddenStatus, in.Status = ov, ov
	} else {
		in.OverriddenStatus = eureka.StatusUnknown
	}
	if in.Status == eureka.StatusUp && in.LeaseInfo.ServiceUpTimestamp == 0 {
		in.LeaseInfo.ServiceUpTimestamp = now
	}
	in.LastDirty = cmp.Or(in.LastDirty, now)
	if s.apps[app] == nil {
		s.apps[app] = map[string]*eureka.Instance{}
	}
	s.apps[app][id] = in
	s.record(in, action)
	w.WriteHeader(http.StatusNoContent)
}

// renew is a heartbeat (PUT /apps/APP/ID): 404 for an unknown instance or
// one the client changed since it registered (lastDirtyTimestamp newer),
// so that the client registers again; else 200.
func (s *Server) renew(w http.ResponseWriter, r *http.Request, app, id string, q map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.apps[app][id]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if d := first(q["lastDirtyTimestamp"]); d != "" {
		if n, err := strconv.ParseInt(d, 10, 64); err == nil && n > i.LastDirty {
			http.NotFound(w, r)
			return
		}
	}
	i.LeaseInfo.LastRenewalTimestamp = s.millis()
	w.WriteHeader(http.StatusOK)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// setStatus overrides an instance's status (PUT .../status?value=).
func (s *Server) setStatus(w http.ResponseWriter, r *http.Request, app, id, value string) {
	switch value {
	case eureka.StatusUp, eureka.StatusDown, eureka.StatusStarting, eureka.StatusOutOfService, eureka.StatusUnknown:
	default:
		http.Error(w, "bad status "+value, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.apps[app][id]
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.overrides[id] = value
	i.OverriddenStatus, i.Status = value, value
	i.LastDirty = s.millis()
	s.record(i, eureka.ActionModified)
	w.WriteHeader(http.StatusOK)
}

// deleteOverride removes a status override (DELETE .../status), the status
// falling back to ?value= or UNKNOWN.
func (s *Server) deleteOverride(w http.ResponseWriter, r *http.Request, app, id, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.apps[app][id]
	if !ok {
		http.NotFound(w, r)
		return
	}
	delete(s.overrides, id)
	i.OverriddenStatus, i.Status = eureka.StatusUnknown, cmp.Or(value, eureka.StatusUnknown)
	i.LastDirty = s.millis()
	s.record(i, eureka.ActionModified)
	w.WriteHeader(http.StatusOK)
}

// updateMetadata sets metadata keys from the query (PUT .../metadata?k=v).
func (s *Server) updateMetadata(w http.ResponseWriter, r *http.Request, app, id string, q map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.apps[app][id]
	if !ok {
		http.NotFound(w, r)
		return
	}
	md := maps.Clone(i.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	for k, v := range q {
		md[k] = first(v)
	}
	i.Metadata = md
	s.record(i, eureka.ActionModified)
	w.WriteHeader(http.StatusOK)
}
