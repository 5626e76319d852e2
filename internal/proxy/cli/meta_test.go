package cli

import (
	"maps"
	"testing"
)

// TestMetaFromEnv: ISTIO_META_KEY=VALUE environment variables become node
// metadata KEY, as pilot-agent reads them; empty values and bare prefixes
// are skipped.
func TestMetaFromEnv(t *testing.T) {
	got := metaFromEnv([]string{"PATH=/bin", "ISTIO_META_MAST_PROXYCONFIG=ratings", "ISTIO_META_DNS_CAPTURE=true",
		"ISTIO_META_=x", "ISTIO_META_EMPTY=", "ISTIO_METAJSON_X={}"})
	want := map[string]string{"MAST_PROXYCONFIG": "ratings", "DNS_CAPTURE": "true"}
	if !maps.Equal(got, want) {
		t.Errorf("metaFromEnv = %v, want %v", got, want)
	}
}
