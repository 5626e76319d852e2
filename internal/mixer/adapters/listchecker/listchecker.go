// Package listchecker is Mixer's list adapter: a listentry's value is
// looked up in a list of strings, case-insensitive strings, IP addresses
// and networks, or regular expressions, given inline (overrides) and/or
// fetched from providerUrl and refreshed; the list is a whitelist or a
// blacklist.
package listchecker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/httpget"
	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/mixer/template"
)

// Params are Istio's listchecker params.
type Params struct {
	ProviderURL     string           `json:"providerUrl"`
	RefreshInterval adapter.Duration `json:"refreshInterval"`
	TTL             adapter.Duration `json:"ttl"`
	CachingInterval adapter.Duration `json:"cachingInterval"`
	CachingUseCount int32            `json:"cachingUseCount"`
	Overrides       []string         `json:"overrides"`
	EntryType       string           `json:"entryType"`
	Blacklist       bool             `json:"blacklist"`
}

// MaxListBytes bounds a fetched list.
const MaxListBytes = 4 << 20

// Info describes the adapter.
var Info = &adapter.Info{Name: "listchecker", Templates: []string{"listentry"}, Validate: validate, New: New}

func parse(params *structpb.Struct) (*Params, *list, error) {
	var p Params
	if err := adapter.Decode(params, &p); err != nil {
		return nil, nil, err
	}
	switch p.EntryType {
	case "":
		p.EntryType = "STRINGS"
	case "STRINGS", "CASE_INSENSITIVE_STRINGS", "IP_ADDRESSES", "REGEX":
	default:
		return nil, nil, fmt.Errorf("params.entryType: %q: want STRINGS, CASE_INSENSITIVE_STRINGS, IP_ADDRESSES or REGEX", p.EntryType)
	}
	if p.ProviderURL != "" {
		u, err := url.Parse(p.ProviderURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, nil, fmt.Errorf("params.providerUrl: %q: want an http or https URL", p.ProviderURL)
		}
	}
	if p.RefreshInterval < 0 || p.TTL < 0 || p.CachingInterval < 0 || p.CachingUseCount < 0 {
		return nil, nil, fmt.Errorf("params: refreshInterval, ttl, cachingInterval and cachingUseCount must not be negative")
	}
	if p.RefreshInterval == 0 {
		p.RefreshInterval = adapter.Duration(time.Minute)
	}
	if p.TTL == 0 {
		p.TTL = adapter.Duration(5 * time.Minute)
	}
	if p.ProviderURL != "" && p.TTL < p.RefreshInterval {
		return nil, nil, fmt.Errorf("params.ttl: %v is shorter than refreshInterval %v", p.TTL.D(), p.RefreshInterval.D())
	}
	if p.CachingInterval == 0 {
		p.CachingInterval = adapter.Duration(5 * time.Minute)
	}
	if p.CachingUseCount == 0 {
		p.CachingUseCount = 10000
	}
	l, err := buildList(p.EntryType, p.Overrides)
	if err != nil {
		return nil, nil, fmt.Errorf("params.overrides%w", err)
	}
	return &p, l, nil
}

func validate(params *structpb.Struct) error { _, _, err := parse(params); return err }

// list is one immutable list of entries.
type list struct {
	kind    string
	strs    map[string]bool
	nets    []*net.IPNet
	regexps []*regexp.Regexp
}

// buildList parses entries; errors are "[i]: ..." to follow a field name.
func buildList(kind string, entries []string) (*list, error) {
	l := &list{kind: kind, strs: map[string]bool{}}
	for i, e := range entries {
		switch kind {
		case "STRINGS":
			l.strs[e] = true
		case "CASE_INSENSITIVE_STRINGS":
			l.strs[strings.ToLower(e)] = true
		case "IP_ADDRESSES":
			if _, n, err := net.ParseCIDR(e); err == nil {
				l.nets = append(l.nets, n)
				continue
			}
			ip := net.ParseIP(e)
			if ip == nil {
				return nil, fmt.Errorf("[%d]: %q is not an IP address or CIDR network", i, e)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			l.nets = append(l.nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		case "REGEX":
			re, err := regexp.Compile("^(?:" + e + ")$")
			if err != nil {
				return nil, fmt.Errorf("[%d]: %q: %v", i, e, err)
			}
			l.regexps = append(l.regexps, re)
		}
	}
	return l, nil
}

func (l *list) contains(v any) (bool, error) {
	switch l.kind {
	case "IP_ADDRESSES":
		var ip net.IP
		switch x := v.(type) {
		case []byte:
			ip = net.IP(x)
		case string:
			ip = net.ParseIP(x)
		}
		if ip == nil || (len(ip) != net.IPv4len && len(ip) != net.IPv6len) {
			return false, fmt.Errorf("%q is not an IP address", attribute.String(v))
		}
		for _, n := range l.nets {
			if n.Contains(ip) {
				return true, nil
			}
		}
		return false, nil
	case "CASE_INSENSITIVE_STRINGS":
		return l.strs[strings.ToLower(attribute.String(v))], nil
	case "REGEX":
		s := attribute.String(v)
		for _, re := range l.regexps {
			if re.MatchString(s) {
				return true, nil
			}
		}
		return false, nil
	}
	return l.strs[attribute.String(v)], nil
}

// Handler checks values against its lists.
type Handler struct {
	p         *Params
	name      string
	overrides *list
	env       adapter.Env

	mu        sync.RWMutex
	fetched   *list
	fetchedAt time.Time
	fetchErr  error

	stop chan struct{}
	done chan struct{}
}

var _ adapter.Checker = (*Handler)(nil)

// New builds a listchecker; with a providerUrl it fetches the list once
// before returning (a failure is logged and retried) and then every
// refreshInterval until Close.
func New(env adapter.Env, name string, params *structpb.Struct) (adapter.Handler, error) {
	p, l, err := parse(params)
	if err != nil {
		return nil, err
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.HTTP == nil {
		env.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	h := &Handler{p: p, name: name, overrides: l, env: env}
	if p.ProviderURL != "" {
		h.stop, h.done = make(chan struct{}), make(chan struct{})
		h.refresh()
		go h.loop()
	}
	return h, nil
}

func (h *Handler) loop() {
	defer close(h.done)
	t := time.NewTicker(h.p.RefreshInterval.D())
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.refresh()
		}
	}
}

func (h *Handler) refresh() {
	l, err := h.fetch()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fetchErr = err
	if err != nil {
		if h.env.Logger != nil {
			h.env.Logger.Warn("listchecker: fetching the list failed", "handler", h.name, "url", h.p.ProviderURL, "err", err)
		}
		return
	}
	h.fetched, h.fetchedAt = l, h.env.Now()
}

// fetch reads the list at providerUrl, at most MaxListBytes.
func (h *Handler) fetch() (*list, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := httpget.Get(ctx, h.env.HTTP, h.p.ProviderURL, "", MaxListBytes)
	if err != nil {
		return nil, err
	}
	return parseList(h.p.EntryType, b)
}

// parseList reads a fetched list of entries of kind: one entry per line,
// blank lines and lines starting with # ignored.
func parseList(kind string, b []byte) (*list, error) {
	var entries []string
	for line := range strings.Lines(string(b)) {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		entries = append(entries, l)
	}
	l, err := buildList(kind, entries)
	if err != nil {
		return nil, fmt.Errorf("entry %w", err)
	}
	return l, nil
}

// errNoList is the answer while a providerUrl list is not (or no longer)
// available: checks fail rather than pass.
var errNoList = errors.New("the list is not available")

// HandleCheck implements adapter.Checker.
func (h *Handler) HandleCheck(_ context.Context, inst *template.Instance) (adapter.CheckResult, error) {
	v := inst.Fields["value"]
	found, err := h.overrides.contains(v)
	if err != nil {
		return adapter.CheckResult{Status: adapter.Status{Code: codes.InvalidArgument, Message: err.Error()}}, nil
	}
	if !found && h.p.ProviderURL != "" {
		h.mu.RLock()
		l, at, ferr := h.fetched, h.fetchedAt, h.fetchErr
		h.mu.RUnlock()
		if l == nil || h.env.Now().Sub(at) > h.p.TTL.D() {
			msg := errNoList.Error()
			if ferr != nil {
				msg += ": " + ferr.Error()
			}
			return adapter.CheckResult{Status: adapter.Status{Code: codes.Unavailable, Message: msg}, ValidDuration: time.Second, ValidUseCount: 1}, nil
		}
		if found, err = l.contains(v); err != nil {
			return adapter.CheckResult{Status: adapter.Status{Code: codes.InvalidArgument, Message: err.Error()}}, nil
		}
	}
	res := adapter.CheckResult{ValidDuration: h.p.CachingInterval.D(), ValidUseCount: h.p.CachingUseCount}
	s := attribute.String(v)
	switch {
	case h.p.Blacklist && found:
		res.Status = adapter.Status{Code: codes.PermissionDenied, Message: s + " is blacklisted"}
	case !h.p.Blacklist && !found:
		res.Status = adapter.Status{Code: codes.PermissionDenied, Message: s + " is not whitelisted"}
	}
	return res, nil
}

// Close stops the refresh.
func (h *Handler) Close() error {
	if h.stop != nil {
		close(h.stop)
		<-h.done
	}
	return nil
}
