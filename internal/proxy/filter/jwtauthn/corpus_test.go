package jwtauthn_test

import (
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/filter/filtercorpus"
	"github.com/mast-mesh/mast/internal/proxy/filter/jwtauthn"
)

// TestParseGeneratedCorpus: the jwt_authn configs mastd generates for
// filtercorpus.Security parse the same both ways and are accepted.
func TestParseGeneratedCorpus(t *testing.T) {
	corpus := filtercorpus.Configs(t)[jwtauthn.TypeURL]
	if len(corpus) == 0 {
		t.Fatal("no jwt_authn config generated")
	}
	for _, b := range corpus {
		if err := jwtauthn.CompareForTest(t, b); err != nil {
			t.Errorf("%v", err)
		}
	}
	t.Logf("%d jwt_authn configs", len(corpus))
}
