package ctl

import (
	"strings"
	"testing"
)

func TestKindsNamed(t *testing.T) {
	for arg, want := range map[string]string{"vs": "VirtualService", "VirtualService": "VirtualService",
		"destinationrules": "DestinationRule", "pa": "PeerAuthentication", "serviceentries": "ServiceEntry"} {
		ks, err := kindsNamed(arg)
		if err != nil || len(ks) != 1 || ks[0].Kind != want {
			t.Errorf("kindsNamed(%q) = %v, %v; want %s", arg, ks, err, want)
		}
	}
	if ks, err := kindsNamed("all"); err != nil || len(ks) < 10 {
		t.Errorf("all: %d kinds, %v", len(ks), err)
	}
	if _, err := kindsNamed("pods"); err == nil || !strings.Contains(err.Error(), `unknown kind "pods"`) {
		t.Errorf("pods: %v", err)
	}
}

func TestSummarizeStatus(t *testing.T) {
	for _, tc := range []struct {
		name           string
		item           getItem
		reconciled, in string
	}{
		{"none written", getItem{Generation: 1}, "Unknown", "no status written yet"},
		{"in force", getItem{Generation: 2, Status: map[string]any{"observedGeneration": int64(2),
			"conditions": []any{map[string]any{"type": "Reconciled", "status": "True", "message": "in force"}}}}, "True", "-"},
		{"refused", getItem{Generation: 1, Status: map[string]any{"observedGeneration": int64(1),
			"conditions": []any{map[string]any{"type": "Reconciled", "status": "False", "message": "rejected by validation: spec.hosts: required"}}}},
			"False", "rejected by validation: spec.hosts: required"},
		{"analysis", getItem{Generation: 1, Status: map[string]any{"observedGeneration": int64(1),
			"conditions":         []any{map[string]any{"type": "Reconciled", "status": "True"}},
			"validationMessages": []any{map[string]any{"type": map[string]any{"code": "IST0173", "name": "DestinationRuleSubsetNotSelectPods"}, "level": "ERROR"}}}},
			"True", "IST0173 DestinationRuleSubsetNotSelectPods (ERROR)"},
		{"stale", getItem{Generation: 3, Status: map[string]any{"observedGeneration": int64(2),
			"conditions": []any{map[string]any{"type": "Reconciled", "status": "True"}}}}, "True", "status is of generation 2, the resource is at 3"},
	} {
		r, m := summarize(tc.item)
		if r != tc.reconciled || !strings.Contains(m, tc.in) {
			t.Errorf("%s: got %q %q, want %q and %q", tc.name, r, m, tc.reconciled, tc.in)
		}
	}
}
