package jwtauthn

import "sync"

// Envoy's defaults for its per-provider cache of verified tokens
// (jwt_cache_config): 100 tokens of at most 4 KiB.
const (
	tokenCacheSize    = 100
	maxCachedTokenLen = 4096
)

// tokenCache remembers tokens whose signature verified with a provider's
// keys, keyed by the exact token text, so a client that sends the same
// token again costs a map lookup instead of a signature verification.
// Issuer, time and audience checks still run on every request. Cached
// tokens (and their claims) are shared and read-only.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]*token
}

func (c *tokenCache) get(raw string) *token {
	if len(raw) > maxCachedTokenLen {
		return nil
	}
	c.mu.Lock()
	t := c.m[raw]
	c.mu.Unlock()
	return t
}

func (c *tokenCache) put(t *token) {
	if len(t.raw) > maxCachedTokenLen {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*token, tokenCacheSize)
	}
	if len(c.m) >= tokenCacheSize {
		for k := range c.m { // evict one arbitrary entry
			delete(c.m, k)
			break
		}
	}
	c.m[t.raw] = t
}
