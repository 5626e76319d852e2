package workloadhealth

import (
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

func entry(name, addr, sa string, annotated bool) config.Resource {
	r := config.Resource{Meta: config.Meta{Kind: config.WorkloadEntry, Name: name, Namespace: "vm"},
		Spec: &networking.WorkloadEntry{Address: addr, ServiceAccount: sa}}
	if annotated {
		r.Annotations = map[string]string{AnnotationEnabled: "true"}
	}
	return r
}

func names(s *config.Snapshot) []string {
	var out []string
	for _, r := range s.List(config.WorkloadEntry) {
		out = append(out, r.Name)
	}
	return out
}

func TestApply(t *testing.T) {
	snap := config.NewSnapshot([]config.Resource{
		entry("plain", "10.0.0.1", "vm", false), // not annotated: always in
		entry("probed", "10.0.0.2", "vm", true),
		entry("other", "10.0.0.3", "vm", true),
	})
	var tb Table
	proxy := &model.Proxy{ID: "sidecar~10.0.0.2~probed.vm~vm.svc.cluster.local", Namespace: "vm", IPAddresses: []string{"10.0.0.2"},
		ServiceAccount: "spiffe://cluster.local/ns/vm/sa/vm"}
	check := func(what string, want ...string) {
		t.Helper()
		got, _ := tb.Apply(snap)
		if g := names(got); len(g) != len(want) || (len(g) > 0 && !equal(g, want)) {
			t.Fatalf("%s: entries %v, want %v", what, g, want)
		}
	}
	check("annotated entries without a report are unhealthy", "plain")
	now := time.Unix(1000, 0)
	if !tb.Report(proxy, "probed", true, "", now) {
		t.Fatal("first report: no change")
	}
	check("healthy report", "plain", "probed")
	if tb.Report(proxy, "probed", true, "", now.Add(time.Second)) {
		t.Fatal("same health again reported as a change")
	}
	if !tb.Report(proxy, "probed", false, "status 503", now.Add(2*time.Second)) {
		t.Fatal("unhealthy report: no change")
	}
	check("unhealthy report", "plain")
	c := tb.Conditions()
	if len(c) != 1 || c[0].Status != "False" || c[0].Message != "status 503" || !c[0].LastTransition.Equal(now.Add(2*time.Second)) || c[0].Type != "Healthy" {
		t.Fatalf("conditions %+v", c)
	}
	tb.Report(proxy, "probed", true, "", now.Add(3*time.Second))
	// A proxy reporting for an entry that is not its own counts for nothing.
	tb.Report(proxy, "other", true, "", now)
	check("report for another address", "plain", "probed")
	if !tb.Forget(proxy, "probed") {
		t.Fatal("forgetting a healthy entry: no change")
	}
	check("forgotten: health unknown again", "plain")
	if tb.Forget(&model.Proxy{ID: "someone-else", Namespace: "vm"}, "other") {
		t.Fatal("another proxy forgot a report it did not make")
	}
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestOwns(t *testing.T) {
	r := entry("e", "10.0.0.2", "", true)
	if err := Owns(r, []string{"10.0.0.2"}, "spiffe://cluster.local/ns/vm/sa/default"); err != nil {
		t.Errorf("default service account: %v", err)
	}
	if err := Owns(r, []string{"10.0.0.9"}, "default"); err == nil {
		t.Error("another address owns the entry")
	}
	if err := Owns(entry("e", "10.0.0.2", "vm", true), []string{"10.0.0.2"}, "spiffe://cluster.local/ns/vm/sa/other"); err == nil {
		t.Error("another service account owns the entry")
	}
}

// Enabled reads the annotation as ParseBool does, and costs nothing for an
// entry without it (Apply asks for every WorkloadEntry on every update).
func TestEnabled(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "1": true, "false": false, "": false, "yes": false} {
		r := entry("e", "10.0.0.1", "vm", false)
		r.Annotations = map[string]string{AnnotationEnabled: v}
		if got := Enabled(r); got != want {
			t.Errorf("Enabled with %q = %v, want %v", v, got, want)
		}
	}
	plain := entry("plain", "10.0.0.1", "vm", false)
	if Enabled(plain) {
		t.Error("Enabled without the annotation")
	}
	if n := testing.AllocsPerRun(100, func() { Enabled(plain) }); n != 0 {
		t.Errorf("Enabled allocates %.0f times for an entry without the annotation, want 0", n)
	}
}
