package generate

import (
	"strings"
	"testing"
)

// parseCluster reads Istio's outbound|PORT|SUBSET|HOST names and refuses
// everything else, as the strings.Split version it replaced did.
func TestParseCluster(t *testing.T) {
	split := func(name string) (uint32, string, string, bool) {
		parts := strings.Split(name, "|")
		if len(parts) != 4 || parts[0] != "outbound" || parts[3] == "" {
			return 0, "", "", false
		}
		var n uint32
		for _, c := range parts[1] {
			if c < '0' || c > '9' || n > 429496729 {
				return 0, "", "", false
			}
			n = n*10 + uint32(c-'0')
		}
		if parts[1] == "" || n == 0 {
			return 0, "", "", false
		}
		return n, parts[2], parts[3], true
	}
	for _, name := range []string{
		"outbound|8080||a.ns.svc.cluster.local", "outbound|8080|v1|a.ns.svc.cluster.local",
		"outbound|0||a", "outbound|x||a", "outbound|8080||", "outbound|8080|v1", "outbound|8080|v1|a|b",
		"inbound|8080||a", "outbound||v1|a", "outbound|99999999999||a", "outbound|4294967295||a",
		"BlackHoleCluster", "", "|||", "outbound|8080|||",
	} {
		p, s, h, ok := parseCluster(name)
		wp, ws, wh, wok := split(name)
		if p != wp || s != ws || h != wh || ok != wok {
			t.Errorf("parseCluster(%q) = %d %q %q %v, want %d %q %q %v", name, p, s, h, ok, wp, ws, wh, wok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { parseCluster("outbound|8080|v1|a.ns.svc.cluster.local") }); n != 0 {
		t.Errorf("parseCluster allocates %.0f times per call, want 0", n)
	}
}
