package generate

import (
	"strings"
	"testing"
)

// FuzzClusterHost: cluster names come from clients' EDS/CDS subscriptions.
func FuzzClusterHost(f *testing.F) {
	for _, s := range []string{"outbound|9080||reviews.default.svc.cluster.local", "outbound|9080|v1|r", "inbound|80||", "BlackHoleCluster", "outbound||||", "outbound|99999999999||x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		host, ok := ClusterHost(name)
		if ok && (host == "" || strings.Contains(host, "|") || !strings.HasSuffix(name, "|"+host)) {
			t.Fatalf("ClusterHost(%q) = %q", name, host)
		}
	})
}

// FuzzGenerateNames: subscribed resource names are untrusted. Whatever a
// client asks for, Generate must not fail or panic, must return only names
// that were asked for, and every resource must validate.
func FuzzGenerateNames(f *testing.F) {
	for _, s := range []string{"9080", "http_proxy", "echo:7070", "reviews.default:9080", "outbound|9080|v2|reviews.default.svc.cluster.local", "inbound|9080||", "http.80", "https.443.https.bookinfo-gateway.default", "0", "reviews:", ":9080", "[::1]:80", "outbound|9080|nope|x"} {
		f.Add(s, uint8(0))
	}
	pc := bookinfoPush()
	proxies := []func() fixtureProxy{}
	for _, fp := range fixtureProxies {
		proxies = append(proxies, func() fixtureProxy { return fp })
	}
	f.Fuzz(func(t *testing.T, name string, which uint8) {
		fp := proxies[int(which)%len(proxies)]()
		for _, typ := range allTypes {
			rs, err := Generate(pc, fp.proxy(), typ, []string{name})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.Name != name {
					t.Fatalf("%s: asked for %q, got %q", typ, name, r.Name)
				}
				if err := r.Resource.(validator).ValidateAll(); err != nil {
					t.Fatalf("%s %q: %v", typ, name, err)
				}
			}
		}
	})
}
