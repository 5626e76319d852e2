package upstream

import (
	"hash/fnv"
	"math/bits"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

type ringEntry struct {
	hash uint64
	host *Host
}

// hostSet is an immutable set of hosts with its balancer tables.
type hostSet struct {
	hosts  []HostInfo
	cum    []uint64 // cumulative weights; nil when all weights are equal
	total  uint64
	ring   []ringEntry // ring hash
	maglev []*Host     // maglev lookup table

	// Priorities and localities (priority.go). levels, when set, are the
	// cluster's priorities in order, each a set of its own; picks go to
	// one of them. localities, when set (locality-weighted balancing),
	// split a level by locality. endpoints counts the set's endpoints
	// including EDS-unhealthy ones; weight is a locality's weight.
	levels        []*hostSet
	localities    []*hostSet
	endpoints     int
	weight        uint32
	overprovision uint32 // percent
	// warmUntil (Unix nanoseconds) is when the set's newest host leaves
	// slow start; 0 when slow start cannot change its picks (slowstart.go).
	warmUntil int64
}

func (hs *hostSet) build(cfg *xdsparse.Cluster) {
	equal := true
	for _, h := range hs.hosts {
		hs.total += uint64(h.Weight)
		if h.Weight != hs.hosts[0].Weight {
			equal = false
		}
	}
	if !equal {
		var acc uint64
		hs.cum = make([]uint64, len(hs.hosts))
		for i, h := range hs.hosts {
			acc += uint64(h.Weight)
			hs.cum[i] = acc
		}
	}
	if len(hs.hosts) == 0 {
		return
	}
	hs.noteSlowStart(cfg)
	switch cfg.LB {
	case xdsparse.RingHash:
		hs.buildRing(cfg.RingSize)
	case xdsparse.Maglev:
		hs.buildMaglev(cfg.RingSize)
	}
}

// Hash64 hashes s with FNV-1a 64 (the consistent-hash key function).
func Hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return mix(h.Sum64())
}

// mix spreads the bits of x (splitmix64 finalizer).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (hs *hostSet) buildRing(size uint64) {
	size = max(size, uint64(len(hs.hosts)))
	for _, h := range hs.hosts {
		n := size * uint64(h.Weight) / hs.total
		n = max(n, 1)
		for i := uint64(0); i < n; i++ {
			hs.ring = append(hs.ring, ringEntry{hash: Hash64(h.Host.Addr + "_" + strconv.FormatUint(i, 10)), host: h.Host})
		}
	}
	sort.Slice(hs.ring, func(i, j int) bool { return hs.ring[i].hash < hs.ring[j].hash })
}

func (hs *hostSet) buildMaglev(m uint64) {
	n := len(hs.hosts)
	offset, skip := make([]uint64, n), make([]uint64, n)
	next := make([]uint64, n)
	for i, h := range hs.hosts {
		offset[i] = Hash64(h.Host.Addr) % m
		skip[i] = Hash64(h.Host.Addr+"#skip")%(m-1) + 1
	}
	table := make([]*Host, m)
	// Weighted Maglev: a host takes a turn as often as its weight allows.
	maxW := uint64(0)
	for _, h := range hs.hosts {
		maxW = max(maxW, uint64(h.Weight))
	}
	filled := uint64(0)
	credit := make([]uint64, n)
	for iter := uint64(0); filled < m; iter++ {
		for i, h := range hs.hosts {
			credit[i] += uint64(h.Weight)
			if credit[i] < maxW {
				continue
			}
			credit[i] -= maxW
			for {
				c := (offset[i] + next[i]*skip[i]) % m
				next[i]++
				if table[c] == nil {
					table[c] = h.Host
					filled++
					break
				}
			}
			if filled == m {
				break
			}
		}
	}
	hs.maglev = table
}

// PickOptions steer one host selection.
type PickOptions struct {
	Hash    uint64
	HasHash bool
	// Exclude rejects hosts (retry previous_hosts); Attempts bounds re-picks.
	Exclude  func(*Host) bool
	Attempts int
	// SkipLevels leaves priorities out of the priority load (bit i:
	// priority i; retry previous_priorities), unless no other priority
	// has a usable host.
	SkipLevels uint64
}

// Pick selects a host, or nil when there is none.
func (c *Cluster) Pick(o PickOptions) *Host {
	hs := c.set.Load()
	if hs.levels != nil {
		hs = c.pickLevel(hs, o)
	}
	if hs.localities != nil {
		hs = c.pickLocality(hs, o)
	}
	if len(hs.hosts) == 0 {
		return nil
	}
	var h *Host
	// Ejected hosts are skipped. Under healthy_panic_threshold percent of
	// usable hosts the balancer panics and ignores ejections, as Envoy does;
	// with a threshold of 0 it never panics and may find no host.
	panicking := c.panics(hs)
	tries := len(hs.hosts) + 2
	for attempt := 0; ; attempt++ {
		h = c.pickOnce(hs, o, uint64(attempt))
		if !panicking && !c.usable(h) {
			if attempt < tries {
				continue
			}
			if h = c.firstUsable(hs); h == nil {
				return nil
			}
		}
		if o.Exclude == nil || !o.Exclude(h) {
			return h
		}
		if attempt >= o.Attempts {
			// Re-picks did not leave the excluded hosts (least request
			// keeps choosing a host whose connections fail fast: it
			// has no active requests). Another usable host, when there
			// is one, beats retrying where the request just failed.
			if other := c.firstUsableExcept(hs, o.Exclude, panicking); other != nil {
				return other
			}
			return h
		}
	}
}

// firstUsableExcept is the first host not excluded and not ejected (ejection
// ignored while panicking), nil when there is none.
func (c *Cluster) firstUsableExcept(hs *hostSet, exclude func(*Host) bool, panicking bool) *Host {
	n := uint64(len(hs.hosts))
	start := c.rand() % n // not always the first: spread the fallbacks
	for i := range n {
		h := hs.hosts[(start+i)%n].Host
		if !exclude(h) && (panicking || c.usable(h)) {
			return h
		}
	}
	return nil
}

// panics reports whether the share of usable hosts is under the cluster's
// panic threshold. Only clusters with outlier detection eject hosts.
func (c *Cluster) panics(hs *hostSet) bool {
	if c.Cfg.Outlier == nil {
		return false
	}
	usable := 0
	for i := range hs.hosts {
		if c.usable(hs.hosts[i].Host) {
			usable++
		}
	}
	return float64(usable)*100 < c.Cfg.PanicThreshold*float64(len(hs.hosts))
}

// firstUsable is the first host not ejected, nil when every host is.
func (c *Cluster) firstUsable(hs *hostSet) *Host {
	for i := range hs.hosts {
		if h := hs.hosts[i].Host; c.usable(h) {
			return h
		}
	}
	return nil
}

func (c *Cluster) pickOnce(hs *hostSet, o PickOptions, attempt uint64) *Host {
	switch c.Cfg.LB {
	case xdsparse.RingHash, xdsparse.Maglev:
		key := o.Hash
		if !o.HasHash {
			key = c.rand()
		}
		key = mix(key + attempt)
		if hs.maglev != nil {
			return hs.maglev[key%uint64(len(hs.maglev))]
		}
		i := sort.Search(len(hs.ring), func(i int) bool { return hs.ring[i].hash >= key })
		if i == len(hs.ring) {
			i = 0
		}
		return hs.ring[i].host
	case xdsparse.Random:
		return hs.weighted(c.rand())
	case xdsparse.LeastRequest:
		if len(hs.hosts) == 1 {
			return hs.hosts[0].Host
		}
		if hs.warmUntil != 0 && time.Now().UnixNano() < hs.warmUntil {
			a, b := c.pickWarming(hs), c.pickWarming(hs)
			if b.Active.Load() < a.Active.Load() {
				return b
			}
			return a
		}
		a, b := hs.weighted(c.rand()), hs.weighted(c.rand())
		if b.Active.Load() < a.Active.Load() {
			return b
		}
		return a
	default:
		if hs.warmUntil != 0 && time.Now().UnixNano() < hs.warmUntil {
			return c.pickWarming(hs)
		}
		return hs.weighted(c.rr.Add(1) - 1)
	}
}

// weighted maps n onto a host in proportion to weights.
func (hs *hostSet) weighted(n uint64) *Host {
	if hs.cum == nil {
		return hs.hosts[n%uint64(len(hs.hosts))].Host
	}
	x := n % hs.total
	i := sort.Search(len(hs.cum), func(i int) bool { return hs.cum[i] > x })
	return hs.hosts[i].Host
}

func (c *Cluster) rand() uint64 {
	// A per-cluster counter through a mixer is cheaper than a locked source
	// and random enough for balancing.
	x := c.rnd.Add(0x9e3779b97f4a7c15)
	if x == 0x9e3779b97f4a7c15 {
		c.rnd.Add(rand.Uint64())
	}
	return mix(x) ^ uint64(bits.Len64(x))
}
