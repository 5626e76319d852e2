package generate

import (
	"testing"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestCacheOracleCRL: the mesh CA's revocation list is an input of the
// cached clusters (their ISTIO_MUTUAL validation contexts carry it): a
// revocation, and its lifting, must reach every proxy byte-identical to a
// fresh generation.
func TestCacheOracleCRL(t *testing.T) {
	c := NewCache(CacheConfig{})
	proxies := cacheProxies()
	cfg, reg := configSnapshot(bookinfoConfig()), bookinfoRegistry()
	push := func(crl *model.RevocationList, step string) {
		pc := model.NewPushContext("v", model.DefaultMeshConfig(), cfg, reg)
		pc.CRL = crl
		oracle(t, c, pc, proxies, step)
	}
	push(nil, "no CRL")
	push(&model.RevocationList{PEM: []byte("-----BEGIN X509 CRL-----\nAQ==\n-----END X509 CRL-----\n")}, "one CRL")
	push(&model.RevocationList{PEM: []byte("-----BEGIN X509 CRL-----\nAg==\n-----END X509 CRL-----\n")}, "another CRL")
	push(nil, "CRL gone")
	if s := c.Stats(); s.Mismatches != 0 {
		t.Fatalf("stats %+v", s)
	}
}
