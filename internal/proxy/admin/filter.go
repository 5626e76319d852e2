package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sync"
)

// FamilyFilter is the filter parameter of /stats/prometheus: it keeps the
// metric families whose name (as Mast emits it, e.g. envoy_cluster_upstream_rq_total
// or istio_requests_total) the regular expression matches anywhere (as
// regexp.MatchString; anchor it with ^ and $ for a whole name). Families
// it excludes are neither collected nor rendered. The zero value and a
// nil *FamilyFilter keep everything. It remembers its answer per name, so
// one scrape evaluates the expression once per family, not per sample; it
// is not safe for concurrent use (make one per request).
type FamilyFilter struct {
	re   *regexp.Regexp
	seen map[[2]string]bool
}

// FilterParser parses filter parameters, keeping the last expression
// compiled: a scraper asks the same one every time. It is safe for
// concurrent use.
type FilterParser struct {
	mu   sync.Mutex
	expr string
	re   *regexp.Regexp
}

// Parse reads q's filter parameter (RE2 syntax), compiling it only when
// it differs from the last one. Absent or empty, it returns nil:
// everything is kept.
func (p *FilterParser) Parse(q url.Values) (*FamilyFilter, error) {
	expr := q.Get("filter")
	if expr == "" {
		return nil, nil
	}
	p.mu.Lock()
	re := p.re
	if p.expr != expr {
		re = nil
	}
	p.mu.Unlock()
	if re == nil {
		var err error
		if re, err = regexp.Compile(expr); err != nil {
			return nil, fmt.Errorf("parameter filter: %q is not an RE2 regular expression: %w", expr, err)
		}
		p.mu.Lock()
		p.expr, p.re = expr, re
		p.mu.Unlock()
	}
	return &FamilyFilter{re: re, seen: map[[2]string]bool{}}, nil
}

// FromRequest is Parse of r's query for a /stats/prometheus handler; a
// bad expression is answered 400 (naming the parameter) and ok is false.
func (p *FilterParser) FromRequest(w http.ResponseWriter, r *http.Request) (keep *FamilyFilter, ok bool) {
	keep, err := p.Parse(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	return keep, true
}

// Keep reports whether the family named prefix+name is kept. The two
// parts are joined only the first time a name is seen.
func (f *FamilyFilter) Keep(prefix, name string) bool {
	if f == nil || f.re == nil {
		return true
	}
	key := [2]string{prefix, name}
	k, ok := f.seen[key]
	if !ok {
		k = f.re.MatchString(prefix + name)
		f.seen[key] = k
	}
	return k
}

// KeepFunc is Keep as a function of the whole family name, nil when f
// keeps everything.
func (f *FamilyFilter) KeepFunc() func(family string) bool {
	if f == nil || f.re == nil {
		return nil
	}
	return func(family string) bool { return f.Keep("", family) }
}
