// Package localratelimit is Envoy's local rate limiting: the HTTP filter
// envoy.filters.http.local_ratelimit (a token bucket per filter, per route
// with typed_per_filter_config, descriptor buckets from the filter's
// rate_limits actions, draft-03 x-ratelimit-* headers, filter_enabled and
// filter_enforced fractions) and the network filter
// envoy.filters.network.local_ratelimit (a token bucket of connections).
// Buckets live in the proxy: each proxy limits on its own, and a new
// listener configuration starts with full buckets.
package localratelimit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// Names and type URLs.
const (
	Name           = "envoy.filters.http.local_ratelimit"
	TypeURL        = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
	NetworkName    = "envoy.filters.network.local_ratelimit"
	NetworkTypeURL = "type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit"
)

// Limiter is one parsed LocalRateLimit with its buckets.
type Limiter struct {
	status            int
	def               *bucket // nil: only descriptors limit
	enabled, enforced fraction
	notEnforcedHdrs   []headerOp
	responseHdrs      []headerOp
	headers           bool
	consumeDefault    bool
	descriptors       []descriptor
	actions           []rlaction.Descriptor
}

type descriptor struct {
	entries []rlaction.Entry
	b       *bucket
}

type headerOp struct {
	name, value string
	overwrite   bool
	ifAbsent    bool
}

// fraction is a RuntimeFractionalPercent's default (mast-proxy has no
// runtime layer, so a runtime_key always falls back to it, as in Envoy
// when the key is unset).
type fraction struct{ num, den uint32 }

func (f fraction) hit() bool { return f.num >= f.den || f.num > 0 && rand.Uint32N(f.den) < f.num }

// Filter is the HTTP filter.
type Filter struct {
	name string
	l    *Limiter
}

var (
	_ filter.HTTPFilter     = (*Filter)(nil)
	_ filter.ResponseFilter = (*Filter)(nil)
)

// New parses the filter's typed config.
func New(name string, a *anypb.Any) (filter.HTTPFilter, error) {
	l, err := parse(a, nil)
	if err != nil {
		return nil, err
	}
	return &Filter{name: name, l: l}, nil
}

// PerRoute parses a route's typed_per_filter_config: that route's own buckets.
func PerRoute(a *anypb.Any) (any, error) { return parse(a, nil) }

func parse(a *anypb.Any, now func() time.Time) (*Limiter, error) {
	l, err := parseWire(a.GetValue(), now)
	if err != nil && errors.Is(err, errDecode) {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return l, err
}

var errDecode = errors.New("decode")

// Field numbers of the HTTP LocalRateLimit and the messages it uses.
const (
	lrStatPrefix      = 1
	lrStatus          = 2
	lrTokenBucket     = 3
	lrEnabled         = 4
	lrEnforced        = 5
	lrResponseHeaders = 6
	lrDescriptors     = 8
	lrStage           = 9
	lrNotEnforcedHdrs = 10
	lrXRateLimit      = 12
	lrConsumeDefault  = 14
	lrRateLimits      = 17
	rfpDefault        = 1 // RuntimeFractionalPercent.default_value
	fpNumerator       = 1
	fpDenominator     = 2
	hvoHeader         = 1
	hvoAppendAction   = 3
	hvKey             = 1
	hvValue           = 2
	descEntries       = 1
	descTokenBucket   = 2
	entryKey          = 1
	entryValue        = 2
	statusCode        = 1 // HttpStatus.code
	boolValue         = 1 // BoolValue.value
)

// parseWire decodes and compiles an HTTP LocalRateLimit from its wire
// bytes; fields the filter does not honour are errors.
func parseWire(b []byte, now func() time.Time) (*Limiter, error) {
	c, err := pbwire.Decode(wireTable, wireLocalRateLimit, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDecode, err)
	}
	if err := c.CheckFields("", "stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
		"request_headers_to_add_when_not_enforced", "response_headers_to_add", "descriptors", "stage",
		"enable_x_ratelimit_headers", "always_consume_default_token_bucket", "rate_limits"); err != nil {
		return nil, err
	}
	if c.Str(lrStatPrefix) == "" {
		return nil, errors.New("stat_prefix: required")
	}
	if c.U32(lrStage) != 0 {
		return nil, errors.New("stage: only stage 0 is supported")
	}
	l := &Limiter{status: 429, consumeDefault: !c.Has(lrConsumeDefault) || c.Sub(lrConsumeDefault).Bool(boolValue)}
	if c.Has(lrStatus) {
		code := c.Sub(lrStatus).I32(statusCode)
		if code < 400 {
			return nil, fmt.Errorf("status: %d is not an error status", code)
		}
		l.status = int(code)
	}
	if c.Has(lrTokenBucket) {
		if l.def, err = newWireBucket(c.Sub(lrTokenBucket), "token_bucket", now); err != nil {
			return nil, err
		}
	}
	if l.enabled, err = parseFraction(c.Sub(lrEnabled), "filter_enabled"); err != nil {
		return nil, err
	}
	if l.enforced, err = parseFraction(c.Sub(lrEnforced), "filter_enforced"); err != nil {
		return nil, err
	}
	if l.notEnforcedHdrs, err = parseHeaderOps(c.Subs(lrNotEnforcedHdrs), "request_headers_to_add_when_not_enforced"); err != nil {
		return nil, err
	}
	if l.responseHdrs, err = parseHeaderOps(c.Subs(lrResponseHeaders), "response_headers_to_add"); err != nil {
		return nil, err
	}
	switch v := c.I32(lrXRateLimit); v {
	case 0: // OFF
	case 1: // DRAFT_VERSION_03
		l.headers = true
	default:
		return nil, fmt.Errorf("enable_x_ratelimit_headers %d: not supported", v)
	}
	for i, d := range c.Subs(lrDescriptors) {
		p := fmt.Sprintf("descriptors[%d]", i)
		if err := d.CheckFields("", "entries", "token_bucket"); err != nil {
			return nil, fmt.Errorf("%s.%w", p, err)
		}
		var ds descriptor
		for _, e := range d.Subs(descEntries) {
			if e.Str(entryValue) == "" {
				return nil, fmt.Errorf("%s.entries: an empty value (dynamic descriptors) is not supported", p)
			}
			ds.entries = append(ds.entries, rlaction.Entry{Key: e.Str(entryKey), Value: e.Str(entryValue)})
		}
		if len(ds.entries) == 0 {
			return nil, fmt.Errorf("%s.entries: empty", p)
		}
		if ds.b, err = newWireBucket(d.Sub(descTokenBucket), p+".token_bucket", now); err != nil {
			return nil, err
		}
		l.descriptors = append(l.descriptors, ds)
	}
	if l.actions, err = rlaction.ParseWire("rate_limits", c.Subs(lrRateLimits)); err != nil {
		return nil, err
	}
	if len(l.descriptors) > 0 && len(l.actions) == 0 {
		return nil, errors.New("descriptors: need the filter's rate_limits (route-level rate_limits are not supported)")
	}
	if l.def == nil && l.enabled.num > 0 && len(l.descriptors) == 0 {
		return nil, errors.New("token_bucket: required when the filter is enabled")
	}
	return l, nil
}

// parseFraction reads a RuntimeFractionalPercent (nil: absent).
func parseFraction(f *pbwire.Msg, field string) (fraction, error) {
	if f == nil {
		return fraction{0, 100}, nil // Envoy: absent means 0% (disabled / not enforced)
	}
	if err := f.CheckFields("", "default_value", "runtime_key"); err != nil {
		return fraction{}, fmt.Errorf("%s.%w", field, err)
	}
	d := f.Sub(rfpDefault)
	var den uint32
	switch d.I32(fpDenominator) {
	case 0: // HUNDRED
		den = 100
	case 1: // TEN_THOUSAND
		den = 10_000
	case 2: // MILLION
		den = 1_000_000
	default:
		return fraction{}, fmt.Errorf("%s.default_value.denominator: unknown", field)
	}
	return fraction{num: min(d.U32(fpNumerator), den), den: den}, nil
}

func parseHeaderOps(ops []*pbwire.Msg, field string) ([]headerOp, error) {
	var out []headerOp
	for i, o := range ops {
		p := fmt.Sprintf("%s[%d]", field, i)
		if err := o.CheckFields("", "header", "append_action"); err != nil {
			return nil, fmt.Errorf("%s.%w", p, err)
		}
		hv := o.Sub(hvoHeader)
		if err := hv.CheckFields("", "key", "value"); err != nil {
			return nil, fmt.Errorf("%s.header.%w", p, err)
		}
		h := headerOp{name: lower(hv.Str(hvKey)), value: hv.Str(hvValue)}
		if h.name == "" {
			return nil, fmt.Errorf("%s.header.key: empty", p)
		}
		switch a := o.I32(hvoAppendAction); a {
		case 0: // APPEND_IF_EXISTS_OR_ADD
		case 2: // OVERWRITE_IF_EXISTS_OR_ADD
			h.overwrite = true
		case 1: // ADD_IF_ABSENT
			h.ifAbsent = true
		default:
			return nil, fmt.Errorf("%s.append_action %d: not supported", p, a)
		}
		out = append(out, h)
	}
	return out, nil
}

func apply(ops []headerOp, h *headers.List) {
	for _, o := range ops {
		switch {
		case o.overwrite:
			h.Set(o.name, o.value)
		case o.ifAbsent:
			if !h.Has(o.name) {
				h.Add(o.name, o.value)
			}
		default:
			h.Add(o.name, o.value)
		}
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// allow takes tokens for r: from every descriptor bucket its actions match,
// then from the default bucket (unless a descriptor matched and
// always_consume_default_token_bucket is false). It reports the bucket
// state to show: the one that refused, else the one with fewest tokens.
func (l *Limiter) allow(r *filter.Request) (bool, state, bool) {
	var show state
	shown := false
	see := func(s state) {
		if !shown || s.remaining < show.remaining {
			show, shown = s, true
		}
	}
	matched := false
	var buf [8]rlaction.Entry
	for i := range l.actions {
		es, ok := l.actions[i].Build(r, buf[:0])
		if !ok {
			continue
		}
		for j := range l.descriptors {
			d := &l.descriptors[j]
			if !equal(d.entries, es) {
				continue
			}
			matched = true
			ok, s := d.b.take()
			if !ok {
				return false, s, true
			}
			see(s)
		}
	}
	if l.def != nil && (!matched || l.consumeDefault) {
		ok, s := l.def.take()
		if !ok {
			return false, s, true
		}
		see(s)
	}
	return true, show, shown
}

func equal(a, b []rlaction.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DecodeHeaders takes a token or answers 429 (local_rate_limited).
func (f *Filter) DecodeHeaders(_ context.Context, r *filter.Request) filter.Status {
	l := f.l
	if r.Route != nil {
		if rl, ok := r.Route.PerFilterConfig(f.name).(*Limiter); ok {
			l = rl
		}
	}
	if !l.enabled.hit() {
		return filter.Continue
	}
	ok, s, shown := l.allow(r)
	if l.headers && shown {
		r.ResponseHeaders.Set("x-ratelimit-limit", strconv.FormatUint(uint64(s.limit), 10))
		r.ResponseHeaders.Set("x-ratelimit-remaining", strconv.FormatUint(uint64(s.remaining), 10))
		r.ResponseHeaders.Set("x-ratelimit-reset", strconv.FormatInt(int64((s.reset+time.Second-1)/time.Second), 10))
	}
	if ok {
		return filter.Continue
	}
	if !l.enforced.hit() {
		apply(l.notEnforcedHdrs, r.Headers)
		return filter.Continue
	}
	r.Flags |= filter.FlagRateLimited
	for _, o := range l.responseHdrs {
		r.ResponseHeaders = append(r.ResponseHeaders, headers.Field{Name: o.name, Value: o.value})
	}
	r.Details = "local_rate_limited"
	return r.LocalReply(l.status, "local_rate_limited", "RL")
}

// EncodeHeaders adds the x-ratelimit-* headers.
func (f *Filter) EncodeHeaders(r *filter.Request, _ int, h *headers.List) { r.FlushResponseHeaders(h) }

// Network is the TCP filter: one token per connection.
type Network struct{ b *bucket }

var _ filter.NetworkFilter = (*Network)(nil)

// NewNetwork parses envoy.filters.network.local_ratelimit.
func NewNetwork(_ string, a *anypb.Any) (filter.NetworkFilter, error) {
	return parseNetwork(a.GetValue(), nil)
}

// Field numbers of envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit.
const (
	netStatPrefix  = 1
	netTokenBucket = 2
)

// parseNetwork decodes a network LocalRateLimit from its wire bytes.
func parseNetwork(b []byte, now func() time.Time) (*Network, error) {
	c, err := pbwire.Decode(wireTable, wireNetworkLocalRateLimit, b)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", NetworkTypeURL, err)
	}
	if err := c.CheckFields("", "stat_prefix", "token_bucket"); err != nil {
		return nil, err
	}
	if c.Str(netStatPrefix) == "" {
		return nil, errors.New("stat_prefix: required")
	}
	bk, err := newWireBucket(c.Sub(netTokenBucket), "token_bucket", now)
	if err != nil {
		return nil, err
	}
	return &Network{b: bk}, nil
}

// OnConnect closes the connection when the bucket is empty.
func (n *Network) OnConnect(*filter.Conn) filter.Status {
	if ok, _ := n.b.take(); !ok {
		return filter.Stop
	}
	return filter.Continue
}
