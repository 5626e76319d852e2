package listener

import (
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// follow returns the function by which an HTTP connection accepted on r
// under listener config used and filter chain chain finds its chain in
// the current configuration for each request: the same listener (by
// name; a virtual one for a handed-off connection), the chain at the same
// position with the same name and TLS-ness, else the first chain with that
// name and TLS-ness, else the default chain if the connection had it. It
// returns nil when the listener or the chain is gone. While nothing
// changed it costs one atomic load and a pointer comparison.
func (m *Manager) follow(r *running, used *xdsparse.Listener, chain *xdsparse.FilterChain) func() *xdsparse.HTTPManager {
	idx := -1
	for i, c := range used.Chains {
		if c == chain {
			idx = i
		}
	}
	tls := chain.TLS != nil
	return func() *xdsparse.HTTPManager {
		if r.gone.Load() {
			return nil
		}
		cur := r.cfg.Load()
		if cur.Name != used.Name {
			cur = m.virtualByName(used.Name)
			if cur == nil {
				return nil
			}
		}
		if cur == used {
			return chain.HTTP
		}
		var c *xdsparse.FilterChain
		switch {
		case idx < 0:
			c = cur.Default
		case idx < len(cur.Chains) && cur.Chains[idx].Name == chain.Name && (cur.Chains[idx].TLS != nil) == tls:
			c = cur.Chains[idx]
		default:
			for _, cc := range cur.Chains {
				if cc.Name == chain.Name && (cc.TLS != nil) == tls {
					c = cc
					break
				}
			}
		}
		if c == nil {
			return nil
		}
		return c.HTTP
	}
}

func (m *Manager) virtualByName(name string) *xdsparse.Listener {
	v := m.virtual.Load()
	if v == nil {
		return nil
	}
	for _, l := range *v {
		if l.Name == name {
			return l
		}
	}
	return nil
}
