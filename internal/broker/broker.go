// Package broker is mastd's Open Service Broker (API v2.17): it offers the
// mesh services marked for export as a catalog, and turns provisioning and
// binding into mesh configuration. An instance is an AuthorizationPolicy on
// the service's workloads that refuses every client identity the instance
// can issue except those of its live bindings; a binding is such an
// identity, with a short-lived client certificate from the mesh CA for a
// consumer outside the mesh. Unbinding and deprovisioning revoke access by
// rewriting or removing the policy. Resources are written into mastd's
// configuration directory, so they take effect through the normal pipeline.
// Instances, bindings and operations persist in a file.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mast-mesh/mast/internal/config"
)

// Config configures a Broker; mastd fills it from flags.
type Config struct {
	// Plans offered by every exported service (DefaultPlans when empty).
	Plans []PlanConfig
	// StateDir holds state.json (instances, bindings, operations).
	StateDir string
	// ConfigDir is mastd's configuration directory; the broker writes its
	// resources to ConfigDir/broker.
	ConfigDir string
	Mesh      Mesh
	// Issuer issues bindings' client certificates; nil when mastd runs
	// without its CA (bindings then carry no certificate).
	Issuer       Issuer
	TrustDomain  string
	DomainSuffix string
	// ApplyTimeout bounds the wait for the config store to load a write.
	ApplyTimeout time.Duration
	Logger       *slog.Logger
	Clock        func() time.Time
}

// Broker implements the OSB API. Its methods are safe for concurrent use.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	plans  []*plan
	file   stateFile
	policy *policyWriter

	ctx    context.Context // cancelled by Close: operations in flight stop and resume at the next start
	cancel context.CancelFunc
	ops    sync.WaitGroup

	mu sync.Mutex // guards st
	st *state

	applyMu sync.Mutex // serialises policy writes

	catMu   sync.Mutex
	catSnap *config.Snapshot
	cat     *catalog
}

// New loads the broker's state. Call Run (or Resume) to finish operations
// that were in flight when the broker last stopped.
func New(cfg Config) (*Broker, error) {
	if cfg.StateDir == "" || cfg.ConfigDir == "" || cfg.Mesh == nil {
		return nil, errors.New("broker: StateDir, ConfigDir and Mesh are required")
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = "cluster.local"
	}
	if cfg.DomainSuffix == "" {
		cfg.DomainSuffix = "cluster.local"
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if len(cfg.Plans) == 0 {
		cfg.Plans = DefaultPlans()
	}
	if err := checkPlans(cfg.Plans); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, now: cfg.Clock, file: stateFile{path: filepath.Join(cfg.StateDir, "state.json")}}
	for _, pc := range cfg.Plans {
		s, err := compilePlanSchemas(pc)
		if err != nil {
			return nil, fmt.Errorf("broker: plan %s: %w", pc.Name, err)
		}
		b.plans = append(b.plans, &plan{cfg: pc, schemas: s})
	}
	b.policy = &policyWriter{dir: filepath.Join(cfg.ConfigDir, ResourceDir), mesh: cfg.Mesh, timeout: cfg.ApplyTimeout}
	b.warnIfUnenforced()
	st, err := b.file.load()
	if err != nil {
		return nil, err
	}
	b.st = st
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Run resumes interrupted operations and serves until ctx is done; then it
// stops operations in flight (they stay "in progress" in the state file
// and are run again at the next start).
func (b *Broker) Run(ctx context.Context) error {
	b.Resume()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.Close()
			return nil
		case <-t.C:
			b.sweepRetired()
		}
	}
}

// liveCertsUntilLocked returns when the last unexpired certificate issued
// for instance iid expires (zero when none is valid).
func (b *Broker) liveCertsUntilLocked(iid string) time.Time {
	var until time.Time
	now := b.now()
	for _, c := range b.st.Certificates {
		if c.InstanceID == iid && c.NotAfter.After(now) && c.NotAfter.After(until) {
			until = c.NotAfter
		}
	}
	return until
}

// sweepInterval is how often retired policies are checked for removal.
const sweepInterval = time.Minute

// sweepRetired removes the policies of deprovisioned instances whose last
// certificate has expired.
func (b *Broker) sweepRetired() {
	b.mu.Lock()
	now := b.now()
	var due []*Retired
	for _, r := range b.st.Retired {
		if !now.Before(r.Until) {
			due = append(due, r)
		}
	}
	b.mu.Unlock()
	for _, r := range due {
		if _, live := b.currentInstance(r.InstanceID); live {
			// Provisioned again under the same id: its policy is in use.
		} else if err := b.policy.remove(b.ctx, &Instance{ID: r.InstanceID, Service: r.Service}); err != nil {
			if !b.stopping() {
				b.log.Warn("removing a retired policy", "instance", r.InstanceID, "err", err)
			}
			continue
		}
		b.mu.Lock()
		delete(b.st.Retired, r.InstanceID)
		b.saveLocked()
		b.mu.Unlock()
		b.log.Info("removed the policy of a deprovisioned instance: its last certificate expired", "instance", r.InstanceID)
	}
}

func (b *Broker) currentInstance(iid string) (*Instance, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.st.Instances[iid]
	return inst, inst != nil
}

// Resume runs again, in the background, every operation the state file
// records as in progress, and writes the policy of every other provisioned
// instance again (the configuration directory may have been reset or
// edited while mastd was stopped).
func (b *Broker) Resume() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.st.Retired) > 0 {
		b.ops.Add(1)
		go func() {
			defer b.ops.Done()
			b.sweepRetired()
		}()
	}
	for _, inst := range b.st.Instances {
		switch {
		case inst.Op != nil && inst.Op.State == stateInProgress:
			b.log.Info("resuming operation interrupted by a stop", "instance", inst.ID, "operation", inst.Op.Kind, "id", inst.Op.ID)
			b.goInstanceOp(inst.ID, inst.Op.ID)
		case inst.Provisioned:
			b.ops.Add(1)
			go func(iid string) {
				defer b.ops.Done()
				if err := b.applyInstance(iid); err != nil && !b.stopping() {
					b.log.Warn("restoring an instance's policy", "instance", iid, "err", err)
				}
			}(inst.ID)
		}
	}
	for _, bd := range b.st.Bindings {
		if bd.Op != nil && bd.Op.State == stateInProgress {
			b.log.Info("resuming operation interrupted by a stop", "instance", bd.InstanceID, "binding", bd.ID, "operation", bd.Op.Kind, "id", bd.Op.ID)
			b.goBindingOp(bd.InstanceID, bd.ID, bd.Op.ID)
		}
	}
}

// Close stops operations in flight and waits for them.
func (b *Broker) Close() {
	b.cancel()
	b.ops.Wait()
}

// catalog returns the catalog of the current configuration.
func (b *Broker) catalog() *catalog {
	snap := b.cfg.Mesh.Snapshot()
	b.catMu.Lock()
	defer b.catMu.Unlock()
	if b.cat == nil || b.catSnap != snap {
		b.cat, b.catSnap = buildCatalog(snap, b.plans, b.log), snap
	}
	return b.cat
}

// saveLocked persists the state; b.mu must be held. It prunes what is
// older than goneRetention first.
func (b *Broker) saveLocked() error {
	cutoff := b.now().Add(-goneRetention)
	for k, t := range b.st.Gone {
		if t.Before(cutoff) {
			delete(b.st.Gone, k)
		}
	}
	b.st.Certificates = slices.DeleteFunc(b.st.Certificates, func(c *IssuedCertificate) bool { return c.NotAfter.Before(cutoff) })
	if err := b.file.save(b.st); err != nil {
		b.log.Error("saving broker state", "err", err)
		return err
	}
	return nil
}

func newOperationID(kind string) string {
	var buf [12]byte
	rand.Read(buf[:])
	return kind + "-" + hex.EncodeToString(buf[:])
}

// stopping reports whether err comes from the broker being closed.
func (b *Broker) stopping() bool { return b.ctx.Err() != nil }

// grantedLocked returns the principals instance iid's policy admits.
func (b *Broker) grantedLocked(iid string) []string {
	var out []string
	for _, bd := range b.st.Bindings {
		if bd.InstanceID == iid && bd.Granted {
			out = append(out, bd.Principal)
		}
	}
	return out
}

// applyInstance makes the instance's policy match the record: written with
// the granted principals while the instance exists, removed when it is
// being deprovisioned or gone.
func (b *Broker) applyInstance(iid string) error {
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	b.mu.Lock()
	inst := b.st.Instances[iid]
	if inst == nil {
		b.mu.Unlock()
		return nil
	}
	snapshot := *inst
	// A deprovisioned instance's policy stays (denying all its identities)
	// while a certificate it issued is still valid; the sweeper removes it.
	remove := inst.Op != nil && inst.Op.Kind == opDeprovision && b.liveCertsUntilLocked(iid).IsZero() ||
		inst.Op != nil && inst.Op.Kind == opProvision && inst.Op.State == stateFailed
	var doc []byte
	var gen uint64
	if !remove {
		b.st.Generation++
		gen = b.st.Generation
		var err error
		if doc, err = policyDoc(b.cfg.TrustDomain, inst, b.grantedLocked(iid), gen); err != nil {
			b.mu.Unlock()
			return err
		}
		if err := b.saveLocked(); err != nil {
			b.mu.Unlock()
			return err
		}
	}
	b.mu.Unlock()
	if remove {
		return b.policy.remove(b.ctx, &snapshot)
	}
	return b.policy.write(b.ctx, &snapshot, doc, gen)
}

// warnIfUnenforced validates a sample of the policies the broker writes and
// logs the warnings: revocation relies on AuthorizationPolicy enforcement,
// and a build that does not enforce it says so in validation.
func (b *Broker) warnIfUnenforced() {
	sample := &Instance{ID: "sample", Namespace: defaultIdentityNamespace, Service: ServiceRef{Namespace: "default", Selector: map[string]string{"app": "sample"}}}
	doc, err := policyDoc(b.cfg.TrustDomain, sample, []string{"spiffe://" + b.cfg.TrustDomain + "/ns/osb/sa/sample"}, 1)
	if err != nil {
		return
	}
	_, problems := config.Load("broker-policy-sample.yaml", doc)
	for _, w := range problems.Warnings() {
		b.log.Warn("the broker's policies draw a warning: unbinding revokes access only where AuthorizationPolicy is enforced", "warning", w.String())
	}
}
