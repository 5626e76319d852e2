package filter

import (
	"context"
	"strings"
	"testing"
)

// step records the phases a test filter runs in.
type step struct {
	name string
	log  *[]string
	stop string // the phase that answers Stop
}

func (s step) DecodeHeaders(context.Context, *Request) Status {
	*s.log = append(*s.log, s.name+".head")
	if s.stop == "head" {
		return Stop
	}
	return Continue
}

type bodyStep struct{ step }

func (s bodyStep) DecodeBody(context.Context, *Request, []byte, bool) Status {
	*s.log = append(*s.log, s.name+".body")
	if s.stop == "body" {
		return Stop
	}
	return Continue
}

var (
	_ HTTPFilter = step{}
	_ BodyFilter = bodyStep{}
)

// TestBodyFilterHoldsBackLaterFilters: as in Envoy, the filters after the
// first one that buffers the body see the request head only after its body
// phase (ext_authz with_request_body decides before the RBAC filters after
// it), and a Stop there ends the chain before them.
func TestBodyFilterHoldsBackLaterFilters(t *testing.T) {
	for _, tc := range []struct {
		stop string // "": all continue; "body": ext_authz denies on the body
		want string
	}{
		{"", "shadow.head,ext_authz.head,ext_authz.body,rbac.head,body2.head,body2.body,router.head"},
		{"body", "shadow.head,ext_authz.head,ext_authz.body"},
	} {
		var log []string
		c := NewChain([]string{"shadow", "ext_authz", "rbac", "body2", "router"}, []HTTPFilter{
			step{name: "shadow", log: &log}, bodyStep{step{name: "ext_authz", log: &log, stop: tc.stop}},
			step{name: "rbac", log: &log}, bodyStep{step{name: "body2", log: &log}}, step{name: "router", log: &log}})
		r := &Request{}
		if !c.NeedsBody() || c.DecodeHeaders(context.Background(), r) != Continue {
			t.Fatal("head phase")
		}
		st := c.DecodeBody(context.Background(), r, []byte("x"), true)
		if got := strings.Join(log, ","); got != tc.want || (st == Stop) != (tc.stop != "") {
			t.Errorf("stop %q: phases %s (%v), want %s", tc.stop, got, st, tc.want)
		}
	}
	var log []string
	c := NewChain([]string{"a", "b"}, []HTTPFilter{step{name: "a", log: &log}, step{name: "b", log: &log}})
	if c.NeedsBody() || c.DecodeHeaders(context.Background(), &Request{}) != Continue || strings.Join(log, ",") != "a.head,b.head" {
		t.Errorf("chain without body filters: %v", log)
	}
}

// idleStep is a step that reports itself idle on the routes named in idle.
type idleStep struct {
	step
	idle map[string]bool
}

func (s idleStep) IdleOn(rc RouteConfig) bool { return s.idle[rc.PerFilterConfig("").(string)] }

type routeName string

func (r routeName) PerFilterConfig(string) any { return string(r) }

// TestChainIdleOn: a chain is idle on a route only when every filter is an
// IdleFilter idle there; a filter that cannot tell makes it run always.
func TestChainIdleOn(t *testing.T) {
	var log []string
	a := idleStep{step{name: "a", log: &log}, map[string]bool{"r1": true, "r2": true}}
	b := idleStep{step{name: "b", log: &log}, map[string]bool{"r1": true}}
	for _, c := range []struct {
		chain *Chain
		route string
		want  bool
	}{
		{nil, "r1", true},
		{NewChain(nil, nil), "r1", true},
		{NewChain([]string{"a", "b"}, []HTTPFilter{a, b}), "r1", true},
		{NewChain([]string{"a", "b"}, []HTTPFilter{a, b}), "r2", false},
		{NewChain([]string{"a", "b"}, []HTTPFilter{a, b}), "r3", false},
		{NewChain([]string{"a", "s"}, []HTTPFilter{a, step{name: "s", log: &log}}), "r1", false},
	} {
		if got := c.chain.IdleOn(routeName(c.route)); got != c.want {
			t.Errorf("chain %v on %s: IdleOn %v, want %v", c.chain.Len(), c.route, got, c.want)
		}
	}
	if len(log) != 0 {
		t.Errorf("IdleOn ran filters: %v", log)
	}
}
