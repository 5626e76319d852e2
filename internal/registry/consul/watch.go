package consul

import (
	"context"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// How the registry follows Consul with a bounded number of connections.
//
// Two blocking queries wake on every change that matters:
//   - /v1/catalog/services moves with any registration, deregistration or
//     change of a service instance (Consul bumps the services table's index);
//   - /v1/health/state/any moves with any health check added, removed or
//     changing status.
//
// Neither says everything about what changed, so the sync loop fetches
// /v1/health/service/NAME (not blocking) for the services a change may have
// touched: first those the answers name (a new service, a service whose
// tags or checks changed), then, when the catalog moved, every other service,
// skipping the conversion of those whose own index did not move. A change
// therefore costs one short request per service when the catalog moved and
// one per touched service when only health did, over at most MaxFetches
// connections. Holding one blocking query per service instead needs one
// connection per service, and a Consul agent refuses more than 200 per
// client by default.

// Keys of the watches in Registry.errs; a fetch's key is serviceKey(name).
const (
	catalogKey = "catalog services"
	checksKey  = "health checks"
)

func serviceKey(name string) string { return "health of " + name }

// settle is how long the sync loop waits after a wake for the other watch's
// answer to the same change, so that one change is fetched once.
const settle = 10 * time.Millisecond

// pending is what the watches found to fetch; the sync loop takes it.
type pending struct {
	mu    sync.Mutex
	names map[string]bool // the catalog's services; nil before its first answer
	first map[string]bool // fetch these first: new, or their checks changed
	all   bool            // then every service: the catalog moved
	wake  chan struct{}
}

func newPending() *pending {
	return &pending{first: map[string]bool{}, wake: make(chan struct{}, 1)}
}

func (p *pending) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take returns and clears what is to be fetched; ok is false until the
// catalog has answered once (the pending work is kept for then).
func (p *pending) take() (names map[string]bool, first, rest []string, all, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.names == nil {
		return nil, nil, nil, false, false
	}
	for n := range p.first {
		if p.names[n] {
			first = append(first, n)
		}
	}
	if p.all {
		for n := range p.names {
			if !p.first[n] {
				rest = append(rest, n)
			}
		}
	}
	slices.Sort(first)
	slices.Sort(rest)
	names, all, p.first, p.all = p.names, p.all, map[string]bool{}, false
	return names, first, rest, all, true
}

// retry puts services whose fetch failed back in front.
func (p *pending) retry(names []string) {
	p.mu.Lock()
	for _, n := range names {
		p.first[n] = true
	}
	p.mu.Unlock()
	p.signal()
}

// watchCatalog follows the list of services and their tags: a new service,
// or one whose tags changed, is fetched first.
func (r *Registry) watchCatalog(ctx context.Context, p *pending) {
	var prev map[string][]string
	r.blockingLoop(ctx, catalogKey, func(q *api.QueryOptions) (uint64, error) {
		names, meta, err := r.client.Catalog().Services(q)
		if err != nil {
			return 0, err
		}
		delete(names, "consul") // Consul's own servers are not mesh services
		set := make(map[string]bool, len(names))
		p.mu.Lock()
		for n, tags := range names {
			set[n] = true
			if old, ok := prev[n]; !ok || !slices.Equal(old, tags) {
				p.first[n] = true
			}
		}
		p.names, p.all = set, true
		p.mu.Unlock()
		prev = names
		p.signal()
		return meta.LastIndex, nil
	})
}

// watchChecks follows every health check; a service whose checks changed is
// fetched first, and a change to a node's own checks (which count for every
// service on the node) fetches them all.
func (r *Registry) watchChecks(ctx context.Context, p *pending) {
	var prev map[string]uint64
	r.blockingLoop(ctx, checksKey, func(q *api.QueryOptions) (uint64, error) {
		checks, meta, err := r.client.Health().State(api.HealthAny, q)
		if err != nil {
			return 0, err
		}
		cur := checkSums(checks)
		p.mu.Lock()
		for name, sum := range cur {
			if prev[name] != sum {
				p.mark(name)
			}
		}
		for name := range prev {
			if _, ok := cur[name]; !ok {
				p.mark(name)
			}
		}
		p.mu.Unlock()
		prev = cur
		p.signal()
		return meta.LastIndex, nil
	})
}

// mark asks for a service's fetch ("" is a node's checks: all of them);
// p.mu is held.
func (p *pending) mark(service string) {
	if service == "" {
		p.all = true
		return
	}
	p.first[service] = true
}

// checkSums sums, per service ("" for node checks), a hash of each check's
// identity, status and modify index: a sum that moves is a service whose
// health may have changed. A sum does not depend on the checks' order.
func checkSums(checks api.HealthChecks) map[string]uint64 {
	sums := map[string]uint64{}
	h := fnv.New64a()
	var buf []byte
	for _, c := range checks {
		if c == nil {
			continue
		}
		buf = append(buf[:0], c.Node...)
		buf = append(buf, 0)
		buf = append(buf, c.CheckID...)
		buf = append(buf, 0)
		buf = append(buf, c.ServiceID...)
		buf = append(buf, 0)
		buf = append(buf, c.Status...)
		buf = append(buf, 0)
		buf = strconv.AppendUint(buf, c.ModifyIndex, 10)
		h.Reset()
		h.Write(buf)
		sums[c.ServiceName] += h.Sum64()
	}
	return sums
}

// blockingLoop runs one blocking query until ctx ends: call makes the query
// with q's wait index and returns the answer's index. Errors back off and
// mark the registry stale; an answer clears that.
func (r *Registry) blockingLoop(ctx context.Context, key string, call func(q *api.QueryOptions) (uint64, error)) {
	var index uint64
	b := r.newBackoff()
	for ctx.Err() == nil {
		start := time.Now()
		var last uint64
		err := decodeSafely(func() (err error) {
			last, err = call((&api.QueryOptions{WaitIndex: index}).WithContext(ctx))
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.setErr(key, err)
			b.wait(ctx)
			continue
		}
		b.reset()
		r.setErr(key, nil)
		index = r.nextIndex(ctx, index, last, start)
	}
}

// syncServices fetches what the watches asked for, forgets services gone
// from the catalog, and retries failed fetches with backoff.
func (r *Registry) syncServices(ctx context.Context, p *pending) {
	known := map[string]uint64{} // each service's index at its last fetch
	b := r.newBackoff()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		sleep(ctx, settle)
		names, first, rest, all, ok := p.take()
		if !ok || ctx.Err() != nil {
			continue
		}
		r.mu.Lock()
		removed := false
		for n := range r.services {
			if !names[n] {
				delete(r.services, n)
				removed = true
			}
		}
		for n := range known {
			if !names[n] {
				delete(known, n)
				delete(r.errs, serviceKey(n))
			}
		}
		r.mu.Unlock()
		if removed {
			r.markDirty()
		}
		failed := r.fetch(ctx, first, known, false)
		failed = append(failed, r.fetch(ctx, rest, known, true)...)
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		if all && len(failed) == 0 || r.status.Synced {
			r.status.Synced, r.status.LastSync = true, time.Now()
		}
		r.mu.Unlock()
		if len(failed) > 0 {
			b.wait(ctx)
			p.retry(failed)
		} else {
			b.reset()
		}
	}
}

// fetch reads the named services' instances and health, at most MaxFetches
// at a time, and keeps what it read; it returns the names whose fetch
// failed. A sweep (after the catalog moved) skips services whose own index
// did not move since known: Consul moves it with every change to the
// service's instances. Services an answer named are always taken.
func (r *Registry) fetch(ctx context.Context, names []string, known map[string]uint64, sweep bool) (failed []string) {
	if len(names) == 0 {
		return nil
	}
	type result struct {
		c         converted
		index     uint64
		skipped   int
		unchanged bool // a sweep found the service's index where it was
		err       error
	}
	results := make([]result, len(names))
	opts := convertOptions{TrustDomain: r.cfg.TrustDomain, AllowWarning: r.cfg.AllowWarning, Registry: "consul"}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(r.cfg.MaxFetches, len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var entries []*api.ServiceEntry
				var meta *api.QueryMeta
				res := &results[i]
				res.err = decodeSafely(func() (err error) {
					entries, meta, err = r.client.Health().Service(names[i], "", false, (&api.QueryOptions{}).WithContext(ctx))
					return err
				})
				if res.err != nil {
					continue
				}
				res.index = meta.LastIndex
				idx, ok := known[names[i]]
				if res.unchanged = sweep && ok && idx == res.index; !res.unchanged {
					res.c, res.skipped = convert(names[i], entries, opts)
				}
			}
		}()
	}
feed:
	for i := range names {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	changed := false
	for i, name := range names {
		res := results[i]
		if ctx.Err() != nil {
			break
		}
		r.setErr(serviceKey(name), res.err)
		if res.err != nil {
			failed = append(failed, name)
			continue
		}
		if res.unchanged {
			continue
		}
		if res.skipped > 0 {
			r.log.Warn("consul instances skipped: no node, service, address or valid port", "service", name, "skipped", res.skipped)
		}
		known[name] = res.index
		r.mu.Lock()
		r.services[name] = res.c
		r.mu.Unlock()
		changed = true
	}
	if changed {
		r.markDirty()
	}
	return failed
}
