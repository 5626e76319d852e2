package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mast-mesh/mast/internal/config"
)

// Mesh is the configuration the broker reads its catalog from and whose
// store loads the resources it writes (mastd's file store).
type Mesh interface {
	Snapshot() *config.Snapshot
}

// Annotations and labels on the resources the broker writes.
const (
	annotationInstanceID = "broker.mast.dev/instance-id"
	annotationGeneration = "broker.mast.dev/generation"
	labelManagedBy       = "app.kubernetes.io/managed-by"
)

// ResourceDir is the subdirectory of the configuration directory the
// broker writes its resources to.
const ResourceDir = "broker"

// shortID is a stable, DNS-safe digest of an instance or binding id.
func shortID(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:5])
}

// policyName is the AuthorizationPolicy of instance iid.
func policyName(iid string) string { return "osb-" + shortID(iid) }

// serviceAccount is the service account of binding bid's client identity.
func serviceAccount(iid, bid string) string { return "osb-" + shortID(iid) + "-" + shortID(bid) }

// principal is an Istio principal (a SPIFFE ID without the scheme).
func principal(spiffeID string) string { return strings.TrimPrefix(spiffeID, "spiffe://") }

// policyDoc renders instance inst's AuthorizationPolicy: a DENY policy on
// the service's workloads for every identity this instance can issue
// (TD/ns/NS/sa/osb-IID-*) except those of its granted bindings. Other
// callers of the service are untouched; a binding's certificate opens the
// service while the binding exists and is refused once it is deleted.
func policyDoc(td string, inst *Instance, granted []string, gen uint64) ([]byte, error) {
	source := map[string]any{
		"principals": []string{td + "/ns/" + inst.Namespace + "/sa/osb-" + shortID(inst.ID) + "-*"},
	}
	if len(granted) > 0 {
		ps := make([]string, len(granted))
		for i, g := range granted {
			ps[i] = principal(g)
		}
		slices.Sort(ps)
		source["notPrincipals"] = ps
	}
	doc := map[string]any{
		"apiVersion": "security.istio.io/v1",
		"kind":       "AuthorizationPolicy",
		"metadata": map[string]any{
			"name":      policyName(inst.ID),
			"namespace": inst.Service.Namespace,
			"labels":    map[string]string{labelManagedBy: "mast-broker"},
			"annotations": map[string]string{
				annotationInstanceID: inst.ID,
				annotationGeneration: strconv.FormatUint(gen, 10),
			},
		},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": inst.Service.Selector},
			"action":   "DENY",
			"rules":    []any{map[string]any{"from": []any{map[string]any{"source": source}}}},
		},
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Written by mastd's service broker for instance "+strconv.Quote(inst.ID)+"; do not edit.\n"), out...), nil
}

// policyWriter writes instances' policies into the config directory and
// waits until the store has loaded (or dropped) them.
type policyWriter struct {
	dir     string // ConfigDir/broker
	mesh    Mesh
	timeout time.Duration
}

func (w *policyWriter) path(iid string) string { return filepath.Join(w.dir, policyName(iid)+".yaml") }

// write writes doc for the instance and waits until the store's snapshot
// holds its generation gen.
func (w *policyWriter) write(ctx context.Context, inst *Instance, doc []byte, gen uint64) error {
	path := w.path(inst.ID)
	if _, problems := config.Load(path, doc); problems.HasErrors() {
		return fmt.Errorf("the policy for instance %q does not validate: %v", inst.ID, problems.Errors())
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return err
	}
	if err := writeFileAtomic(path, doc, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	key := config.Key{Kind: config.AuthorizationPolicy, Namespace: inst.Service.Namespace, Name: policyName(inst.ID)}
	return w.wait(ctx, path, func(snap *config.Snapshot) bool {
		r, ok := snap.Get(key)
		if !ok {
			return false
		}
		g, err := strconv.ParseUint(r.Annotations[annotationGeneration], 10, 64)
		return err == nil && g >= gen
	})
}

// remove deletes the instance's policy and waits until the store has dropped it.
func (w *policyWriter) remove(ctx context.Context, inst *Instance) error {
	path := w.path(inst.ID)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	key := config.Key{Kind: config.AuthorizationPolicy, Namespace: inst.Service.Namespace, Name: policyName(inst.ID)}
	return w.wait(ctx, path, func(snap *config.Snapshot) bool {
		_, ok := snap.Get(key)
		return !ok
	})
}

func (w *policyWriter) wait(ctx context.Context, path string, done func(*config.Snapshot) bool) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	for {
		if done(w.mesh.Snapshot()) {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the configuration store did not take %s within %s", path, w.timeout)
			}
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
