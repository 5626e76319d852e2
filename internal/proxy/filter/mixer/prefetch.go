package mixer

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
)

// Quota prefetch, Istio 1.4's quota cache (istio/proxy's mixerclient with
// prefetch/quota_prefetch.cc), used when transport.disable_quota_cache is
// false: each proxy keeps a pool of quota amounts the Mixer granted it (per
// quota and per value of the attributes the quota referenced), answers
// requests from the pool and asks for more in the background. The amount
// asked is what the requests used over the last predict window, at least
// minPrefetch. While the Mixer grants everything it is asked (open), an
// empty pool lends the amount before it is granted, so that requests never
// wait; once it grants less (closed), the pool asks again only after
// closeWait and never lends. This trades exactness for latency: amounts
// granted to one proxy sit in its pool while another is refused, and what
// an open pool lent before the Mixer refused it has passed. mastd
// generates disable_quota_cache true unless --mixer-quota-prefetch.
const (
	predictWindow = time.Second
	minPrefetch   = 10
	closeWait     = 500 * time.Millisecond
	// lentExpiry is how long an amount lent before it is granted lasts
	// (until the answer sets the granted amount's own expiry).
	lentExpiry = time.Minute
	// counterBuckets divide the predict window.
	counterBuckets = 20
)

// fetchFunc asks the Mixer for amount in the background and calls done
// with what it granted and for how long, or with err when it did not
// answer.
type fetchFunc func(amount int64, done func(granted int64, valid time.Duration, err error))

// slot is one prefetched (or lent) amount.
type slot struct {
	avail   int64
	expires time.Time
	id      uint64
}

// pool is one quota's prefetched amounts for one value of its referenced
// attributes.
type pool struct {
	mu        sync.Mutex
	slots     []slot // oldest first
	used      usage
	closed    bool // the Mixer granted less than asked: no lending
	lastFetch time.Time
	inflight  int
	nextID    uint64
	failOpen  bool
	now       func() time.Time
}

// check takes amount from the pool, first asking for more when the pool
// runs low (fetch runs in the background).
func (p *pool) check(amount int64, now time.Time, fetch fetchFunc) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attemptFetch(amount, now, fetch)
	p.used.add(amount, now)
	if amount == 1 {
		return p.take(1, now) == 0
	}
	if p.available(now) < amount {
		return false
	}
	p.take(amount, now)
	return true
}

func (p *pool) available(now time.Time) int64 {
	var n int64
	for _, s := range p.slots {
		if now.Before(s.expires) {
			n += s.avail
		}
	}
	return n
}

func (p *pool) attemptFetch(amount int64, now time.Time, fetch fetchFunc) {
	if p.closed && (p.inflight > 0 || now.Sub(p.lastFetch) < closeWait) {
		return
	}
	avail := p.available(now)
	desired := max(p.used.count(now), minPrefetch)
	if !(avail < desired/2 && p.inflight == 0 || avail < amount) {
		return
	}
	ask := max(amount, desired)
	var lent uint64
	if avail == 0 && !p.closed {
		lent = p.add(ask, now.Add(lentExpiry))
	}
	p.lastFetch = now
	p.inflight++
	fetch(ask, func(granted int64, valid time.Duration, err error) { p.answer(lent, ask, granted, valid, err) })
}

func (p *pool) add(amount int64, expires time.Time) uint64 {
	p.nextID++
	p.slots = append(p.slots, slot{avail: amount, expires: expires, id: p.nextID})
	return p.nextID
}

// take removes delta from the oldest unexpired slots, dropping spent and
// expired ones; it returns what could not be taken.
func (p *pool) take(delta int64, now time.Time) int64 {
	for len(p.slots) > 0 && delta > 0 {
		s := &p.slots[0]
		if now.Before(s.expires) && s.avail > 0 {
			d := min(s.avail, delta)
			s.avail -= d
			delta -= d
			if s.avail > 0 {
				return 0
			}
		}
		p.slots = p.slots[1:]
	}
	return delta
}

// answer applies the Mixer's answer to a fetch of asked (lent: the slot
// lent for it, 0 for none).
func (p *pool) answer(lent uint64, asked, granted int64, valid time.Duration, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.inflight--
	if err != nil {
		// The fail policy decides what an unanswered fetch grants.
		granted, valid = 0, lentExpiry
		if p.failOpen {
			granted = asked
		}
	}
	if lent == 0 {
		if granted > 0 {
			p.add(granted, now.Add(valid))
		}
	} else {
		var s *slot
		for i := range p.slots {
			if p.slots[i].id == lent {
				s = &p.slots[i]
			}
		}
		if delta := asked - granted; delta > 0 {
			if s != nil {
				d := min(s.avail, delta)
				s.avail -= d
				delta -= d
			}
			if delta > 0 {
				p.take(delta, now)
			}
		}
		if s != nil && s.avail > 0 {
			s.expires = now.Add(valid)
		}
	}
	p.closed = granted < asked
}

// usage counts the amounts asked over the last predict window, in
// counterBuckets buckets.
type usage struct {
	buckets [counterBuckets]int64
	tick    int64 // the bucket number of the newest bucket
}

const bucketWidth = predictWindow / counterBuckets

func (u *usage) advance(now time.Time) {
	t := now.UnixNano() / int64(bucketWidth)
	if t <= u.tick {
		return
	}
	if t-u.tick >= counterBuckets {
		u.buckets = [counterBuckets]int64{}
	} else {
		for i := u.tick + 1; i <= t; i++ {
			u.buckets[i%counterBuckets] = 0
		}
	}
	u.tick = t
}

func (u *usage) add(n int64, now time.Time) {
	u.advance(now)
	u.buckets[u.tick%counterBuckets] += n
}

func (u *usage) count(now time.Time) int64 {
	u.advance(now)
	var n int64
	for _, b := range u.buckets {
		n += b
	}
	return n
}

// quotaPools finds a quota's pool for a request: per quota name, per set
// of attributes the Mixer said the quota referenced (as the check cache's
// signatures), per value of those attributes.
type quotaPools struct {
	seed     maphash.Seed
	failOpen bool
	now      func() time.Time

	mu      sync.Mutex
	byQuota map[string][]*poolSig
}

type poolSig struct {
	refs  []ref
	pools map[uint64]*pool
}

// maxPools bounds the pools of one signature.
const maxPools = 10000

func newQuotaPools(failOpen bool) *quotaPools {
	return &quotaPools{seed: maphash.MakeSeed(), failOpen: failOpen, now: time.Now, byQuota: map[string][]*poolSig{}}
}

// lookup returns b's pool of quota q, nil when there is none yet.
func (qp *quotaPools) lookup(q string, b *reqBag) *pool {
	qp.mu.Lock()
	defer qp.mu.Unlock()
	for _, s := range qp.byQuota[q] {
		if p := s.pools[refsKey(qp.seed, b, s.refs)]; p != nil {
			return p
		}
	}
	return nil
}

// ensure makes b's pool of quota q, whose result referenced ra.
func (qp *quotaPools) ensure(q string, b *reqBag, ra *mixerpb.ReferencedAttributes, dict *attribute.Dictionary) {
	refs, ok := decodeRefs(ra, dict)
	if !ok {
		return
	}
	qp.mu.Lock()
	defer qp.mu.Unlock()
	var sig *poolSig
	for _, s := range qp.byQuota[q] {
		if slices.Equal(s.refs, refs) {
			sig = s
		}
	}
	if sig == nil {
		sig = &poolSig{refs: refs, pools: map[uint64]*pool{}}
		qp.byQuota[q] = append(qp.byQuota[q], sig)
	}
	k := refsKey(qp.seed, b, refs)
	if sig.pools[k] != nil {
		return
	}
	if len(sig.pools) >= maxPools {
		clear(sig.pools)
	}
	sig.pools[k] = &pool{failOpen: qp.failOpen, now: qp.now}
}
