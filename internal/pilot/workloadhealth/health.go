// Package workloadhealth keeps the health that proxies report for their
// WorkloadEntries (the readiness probe of a workload that joined a
// WorkloadGroup, run by its proxy's agent) and applies it to configuration
// as istiod does: a WorkloadEntry annotated proxy.istio.io/health-checks-enabled
// "true" is healthy only while its proxy's last report says so, and an
// unhealthy one gives its services no endpoint (istiod's default,
// PILOT_SEND_UNHEALTHY_ENDPOINTS off), so other proxies stop sending it
// traffic until it passes again.
package workloadhealth

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Istio's annotation, node metadata and condition.
const (
	// AnnotationEnabled marks a WorkloadEntry whose health its proxy
	// reports; auto-registration sets it when the proxy runs a probe.
	AnnotationEnabled = "proxy.istio.io/health-checks-enabled"
	// MetadataWorkloadEntry names the existing WorkloadEntry a proxy that
	// did not auto-register reports for (ISTIO_META_WORKLOAD_ENTRY).
	MetadataWorkloadEntry = "WORKLOAD_ENTRY"
	// ConditionHealthy is the condition type istiod writes.
	ConditionHealthy = "Healthy"
)

// Condition is the Healthy condition of one WorkloadEntry.
type Condition struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Status    string    `json:"status"` // "True" or "False"
	Message   string    `json:"message,omitempty"`
	Proxy     string    `json:"proxy"`
	LastProbe time.Time `json:"lastProbeTime"`
	// LastTransition is when Status last changed.
	LastTransition time.Time `json:"lastTransitionTime"`

	ips []string // the reporting proxy's, checked against the entry
	sa  string
}

// Table holds the latest report per WorkloadEntry. It is safe for
// concurrent use.
type Table struct {
	mu sync.Mutex
	m  map[config.Key]Condition
}

// Report records p's report for its WorkloadEntry name (in p's namespace)
// and returns whether the entry's health changed. The entry need not exist
// yet (an auto-registered one appears once its store has it); the report
// counts only for an entry that is p's (see Owns).
func (t *Table) Report(p *model.Proxy, name string, healthy bool, message string, now time.Time) bool {
	key := config.Key{Kind: config.WorkloadEntry, Namespace: p.Namespace, Name: name}
	st := "False"
	if healthy {
		st, message = "True", ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[config.Key]Condition{}
	}
	old, had := t.m[key]
	c := Condition{Namespace: key.Namespace, Name: key.Name, Type: ConditionHealthy, Status: st, Message: message, Proxy: p.ID,
		LastProbe: now, LastTransition: now, ips: slices.Clone(p.IPAddresses), sa: p.ServiceAccount}
	if had && old.Status == st {
		c.LastTransition = old.LastTransition
	}
	t.m[key] = c
	return !had || old.Status != st
}

// Forget drops the entry's condition when proxy reported it (its stream
// ended: the health is no longer known, so an annotated entry counts as
// unhealthy, as istiod removes the condition) and returns whether one was
// dropped.
func (t *Table) Forget(p *model.Proxy, name string) bool {
	key := config.Key{Kind: config.WorkloadEntry, Namespace: p.Namespace, Name: name}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.m[key]
	if !ok || c.Proxy != p.ID {
		return false
	}
	delete(t.m, key)
	return c.Status == "True"
}

// Conditions returns every condition, sorted by namespace and name.
func (t *Table) Conditions() []Condition {
	t.mu.Lock()
	out := make([]Condition, 0, len(t.m))
	for _, c := range t.m {
		out = append(out, c)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Condition) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// Enabled reports whether r is a WorkloadEntry annotated for health checks.
func Enabled(r config.Resource) bool {
	a, ok := r.Annotations[AnnotationEnabled]
	if !ok {
		// Not annotated, as most are: ParseBool("") would allocate its
		// error, for every WorkloadEntry on every config update.
		return false
	}
	v, err := strconv.ParseBool(a)
	return err == nil && v
}

// Apply returns snap without the WorkloadEntries that are enabled for
// health checks and not known healthy (no report counts as unhealthy, as in
// istiod, so a new entry takes traffic only once its probe passed), and
// the number it left out. snap itself is returned when none is.
func (t *Table) Apply(snap *config.Snapshot) (*config.Snapshot, int) {
	if snap == nil {
		return nil, 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var drop []config.Key
	// By namespace, not List: at 10,000 services List concatenated 50,000
	// WorkloadEntries on every config update; most are not enabled.
	for _, g := range snap.ByNamespace(config.WorkloadEntry) {
		for _, r := range g.Resources {
			if !Enabled(r) {
				continue
			}
			if c, ok := t.m[r.Key()]; !ok || c.Status != "True" || Owns(r, c.ips, c.sa) != nil {
				drop = append(drop, r.Key())
			}
		}
	}
	if len(drop) == 0 {
		return snap, 0
	}
	all := snap.All()
	out := all[:0:0]
	for _, r := range all {
		if r.Kind == config.WorkloadEntry && slices.Contains(drop, r.Key()) {
			continue
		}
		out = append(out, r)
	}
	return config.NewSnapshot(out), len(drop)
}

// Owns checks that the WorkloadEntry r belongs to a proxy of IPs ips and
// service account sa (a name or SPIFFE ID): its address is one of the IPs
// and its service account the proxy's, as istiod checks a proxy's verified
// identity against the entry it controls.
func Owns(r config.Resource, ips []string, sa string) error {
	we, _ := r.Spec.(*networking.WorkloadEntry)
	if we == nil {
		return fmt.Errorf("WorkloadEntry %s/%s has no spec", r.Namespace, r.Name)
	}
	if !slices.Contains(ips, we.GetAddress()) {
		return fmt.Errorf("WorkloadEntry %s/%s: address %q is not the proxy's (%v)", r.Namespace, r.Name, we.GetAddress(), ips)
	}
	want := we.GetServiceAccount()
	if want == "" {
		want = "default"
	}
	if want != sa && !strings.HasSuffix(sa, "/sa/"+want) {
		return fmt.Errorf("WorkloadEntry %s/%s: service account %q, but the proxy is %q", r.Namespace, r.Name, want, sa)
	}
	return nil
}
