package upstream

// Priority and locality selection, as Envoy does it
// (load_balancing/priority_levels and locality_weight in Envoy's docs):
//
//   - a priority's health is the share of its endpoints that are usable
//     (EDS-healthy and not ejected by outlier detection), times the
//     overprovisioning factor (1.4), capped at 100 %;
//   - priority 0 takes as much of the load as its health, the next
//     priority the rest up to its own health, and so on; when the healths
//     add up to less than 100 % the loads are normalized to them;
//   - under locality-weighted balancing, a locality of the chosen
//     priority is picked in proportion to its weight times its
//     availability (the same capped health).

// health is the set's usable share in percent, overprovisioned and capped.
func (c *Cluster) health(hs *hostSet) uint64 {
	if hs.endpoints == 0 {
		return 0
	}
	usable := 0
	for _, h := range hs.hosts {
		if c.usable(h.Host) {
			usable++
		}
	}
	return min(100, uint64(usable)*uint64(hs.overprovision)/uint64(hs.endpoints))
}

// draw is the number a choice among sets is made with: the request's hash
// when it has one (a consistent hash stays consistent), else random.
func (c *Cluster) draw(o PickOptions) uint64 {
	if o.HasHash {
		return mix(o.Hash ^ 0x5bd1e995)
	}
	return c.rand()
}

// pickLevel chooses the priority a request goes to. With no usable host
// anywhere it is priority 0, where the panic threshold applies.
func (c *Cluster) pickLevel(hs *hostSet, o PickOptions) *hostSet {
	var buf [8]uint64
	health := buf[:0]
	var sum, skipped uint64
	for i, l := range hs.levels {
		h := c.health(l)
		if i < 64 && o.SkipLevels&(1<<i) != 0 {
			skipped += h
			h = 0
		}
		health = append(health, h)
		sum += h
	}
	if sum == 0 && skipped > 0 {
		// Every priority with a usable host is skipped: Envoy's
		// previous_priorities then falls back to the unmodified load.
		return c.pickLevel(hs, PickOptions{Hash: o.Hash, HasHash: o.HasHash})
	}
	if sum == 0 {
		return hs.levels[0]
	}
	x := c.draw(o) % min(sum, 100)
	var acc uint64
	for i, h := range health {
		acc += h
		if x < acc {
			return hs.levels[i]
		}
	}
	return hs.levels[len(hs.levels)-1]
}

// pickLocality chooses a locality of the level by weight times availability.
func (c *Cluster) pickLocality(hs *hostSet, o PickOptions) *hostSet {
	var buf [16]uint64
	eff := buf[:0]
	var sum uint64
	for _, l := range hs.localities {
		w := uint64(l.weight) * c.health(l)
		eff = append(eff, w)
		sum += w
	}
	if sum == 0 {
		// No locality has weight and a usable host: the whole level
		// (where the panic threshold applies).
		return &hostSet{hosts: hs.hosts, cum: hs.cum, total: hs.total, ring: hs.ring, maglev: hs.maglev}
	}
	x := c.draw(o) % sum
	var acc uint64
	for i, w := range eff {
		acc += w
		if x < acc {
			return hs.localities[i]
		}
	}
	return hs.localities[len(hs.localities)-1]
}

// LevelOf returns the priority of host h in the cluster's current
// endpoints, -1 when it has none.
func (c *Cluster) LevelOf(h *Host) int {
	hs := c.set.Load()
	if hs.levels == nil {
		for _, x := range hs.hosts {
			if x.Host == h {
				return 0
			}
		}
		return -1
	}
	for i, l := range hs.levels {
		for _, x := range l.hosts {
			if x.Host == h {
				return i
			}
		}
	}
	return -1
}
