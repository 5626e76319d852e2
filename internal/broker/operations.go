package broker

import (
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// goInstanceOp runs an instance operation in the background. It does
// nothing while the broker is stopping: the operation stays in progress in
// the state file and Resume runs it at the next start.
func (b *Broker) goInstanceOp(iid, opID string) {
	if b.stopping() {
		return
	}
	b.ops.Add(1)
	go func() {
		defer b.ops.Done()
		b.runInstanceOp(iid, opID)
	}()
}

func (b *Broker) goBindingOp(iid, bid, opID string) {
	if b.stopping() {
		return
	}
	b.ops.Add(1)
	go func() {
		defer b.ops.Done()
		b.runBindingOp(iid, bid, opID)
	}()
}

// runInstanceOp carries out operation opID of instance iid and records
// its outcome. Interrupted by Close, it records nothing (the operation
// stays in progress, to be resumed).
func (b *Broker) runInstanceOp(iid, opID string) {
	b.mu.Lock()
	inst := b.st.Instances[iid]
	if inst == nil || inst.Op == nil || inst.Op.ID != opID {
		b.mu.Unlock()
		return
	}
	kind := inst.Op.Kind
	if kind == opDeprovision {
		// Revoke every binding with the policy.
		for _, bd := range b.st.Bindings {
			if bd.InstanceID == iid {
				bd.Granted = false
			}
		}
		b.saveLocked()
	}
	b.mu.Unlock()

	err := b.applyInstance(iid)
	if err != nil && b.stopping() {
		return
	}
	if err != nil && kind == opProvision {
		// Remove whatever was written before the failure becomes visible,
		// so a platform polling last_operation never sees "failed" with
		// the policy still in place.
		b.mu.Lock()
		snapshot := *inst
		b.mu.Unlock()
		b.applyMu.Lock()
		if rerr := b.policy.remove(b.ctx, &snapshot); rerr != nil {
			b.log.Warn("removing the policy of a failed instance", "instance", iid, "err", rerr)
		}
		b.applyMu.Unlock()
	}

	b.mu.Lock()
	inst = b.st.Instances[iid]
	if inst == nil || inst.Op == nil || inst.Op.ID != opID {
		b.mu.Unlock()
		return
	}
	op := inst.Op
	switch {
	case err != nil:
		op.State, op.Description = stateFailed, fmt.Sprintf("%s failed: %v", kind, err)
		switch kind {
		case opUpdate:
			op.InstanceUsable, op.UpdateRepeatable = boolp(true), boolp(true)
		case opDeprovision:
			op.InstanceUsable = boolp(false)
		}
		b.log.Warn("operation failed", "instance", iid, "operation", kind, "id", opID, "err", err)
	case kind == opProvision:
		inst.Provisioned = true
		op.State, op.Description = stateSucceeded, fmt.Sprintf("AuthorizationPolicy %s/%s is in force", inst.Service.Namespace, policyName(iid))
	case kind == opUpdate:
		u := op.Update
		inst.PlanID, inst.Parameters, inst.Context, inst.MaintenanceVersion = u.PlanID, u.Parameters, u.Context, u.MaintenanceVersion
		op.Update = nil
		op.State, op.Description = stateSucceeded, "updated"
	case kind == opDeprovision:
		now := b.now()
		for k, bd := range b.st.Bindings {
			if bd.InstanceID == iid {
				delete(b.st.Bindings, k)
				b.st.Gone["b/"+k] = now
				b.revokeLocked(iid, bd.ID, now)
			}
		}
		if until := b.liveCertsUntilLocked(iid); !until.IsZero() {
			b.st.Retired[iid] = &Retired{InstanceID: iid, Service: inst.Service, Until: until}
		}
		delete(b.st.Instances, iid)
		b.st.Gone["i/"+iid] = now
		op.State = stateSucceeded
	}
	b.saveLocked()
	b.mu.Unlock()
	if err == nil {
		b.log.Info("operation succeeded", "instance", iid, "operation", kind, "id", opID)
	}
}

// revokeLocked marks the certificates of a binding revoked.
func (b *Broker) revokeLocked(iid, bid string, now time.Time) {
	for _, c := range b.st.Certificates {
		if c.InstanceID == iid && c.BindingID == bid && c.RevokedAt == nil {
			t := now
			c.RevokedAt = &t
		}
	}
}

// runBindingOp carries out operation opID of binding bid.
func (b *Broker) runBindingOp(iid, bid, opID string) {
	key := bindingKey(iid, bid)
	b.mu.Lock()
	bd := b.st.Bindings[key]
	inst := b.st.Instances[iid]
	if bd == nil || bd.Op == nil || bd.Op.ID != opID || inst == nil {
		b.mu.Unlock()
		return
	}
	kind := bd.Op.Kind
	var err error
	if kind == opBind {
		err = b.prepareBindingLocked(inst, bd)
		if err == nil {
			bd.Granted = true
		}
	} else {
		bd.Granted = false
	}
	b.saveLocked()
	b.mu.Unlock()

	if err == nil {
		err = b.applyInstance(iid)
		if err != nil && b.stopping() {
			return
		}
	}

	b.mu.Lock()
	bd = b.st.Bindings[key]
	if bd == nil || bd.Op == nil || bd.Op.ID != opID {
		b.mu.Unlock()
		return
	}
	op := bd.Op
	now := b.now()
	regrant := false
	switch {
	case err != nil:
		op.State, op.Description = stateFailed, fmt.Sprintf("%s failed: %v", kind, err)
		if kind == opBind {
			bd.Granted, regrant = false, true
			b.revokeLocked(iid, bid, now)
		}
		b.log.Warn("operation failed", "instance", iid, "binding", bid, "operation", kind, "id", opID, "err", err)
	case kind == opBind:
		bd.Created = true
		op.State, op.Description = stateSucceeded, "bound: "+bd.Principal+" is admitted by AuthorizationPolicy "+policyName(iid)
	default:
		delete(b.st.Bindings, key)
		b.st.Gone["b/"+key] = now
		b.revokeLocked(iid, bid, now)
		op.State = stateSucceeded
	}
	b.saveLocked()
	b.mu.Unlock()
	if err == nil {
		b.log.Info("operation succeeded", "instance", iid, "binding", bid, "operation", kind, "id", opID)
	}
	if regrant {
		if err := b.applyInstance(iid); err != nil {
			b.log.Warn("removing the identity of a failed binding", "instance", iid, "binding", bid, "err", err)
		}
	}
}

// prepareBindingLocked fills a binding's credentials (once: a resumed
// operation keeps them) and issues its client certificate.
func (b *Broker) prepareBindingLocked(inst *Instance, bd *Binding) error {
	if bd.Credentials != nil {
		return nil
	}
	creds, eps, err := serviceCredentials(b.cfg.Mesh.Snapshot(), inst.Service, b.cfg.TrustDomain, b.cfg.DomainSuffix)
	if err != nil {
		return err
	}
	creds.ClientSPIFFEID = bd.Principal
	if wantsClientCertificate(bd.Parameters) {
		if b.cfg.Issuer == nil {
			return fmt.Errorf("mastd runs without its CA (--ca-dir), so it cannot issue client certificates")
		}
		id, err := spiffeid.FromString(bd.Principal)
		if err != nil {
			return err
		}
		ttl := time.Duration(DefaultCertificateTTL)
		if o := b.catalog().byID[inst.ServiceID]; o != nil {
			if p := o.plans[inst.PlanID]; p != nil {
				ttl = time.Duration(p.certTTL())
			}
		}
		certPEM, keyPEM, leaf, err := issueClientCertificate(b.cfg.Issuer, id, ttl)
		if err != nil {
			return fmt.Errorf("issuing the client certificate: %w", err)
		}
		creds.ClientCertificate, creds.ClientKey = certPEM, keyPEM
		creds.CACertificate = string(b.cfg.Issuer.TrustBundlePEM())
		bd.ExpiresAt = leaf.NotAfter.UTC()
		// Renew when two thirds of the lifetime have passed.
		bd.RenewBefore = leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 3).UTC()
		creds.ExpiresAt = bd.ExpiresAt.Format(timeFormat)
		b.st.Certificates = append(b.st.Certificates, &IssuedCertificate{
			Serial: leaf.SerialNumber.Text(16), Principal: bd.Principal, InstanceID: inst.ID, BindingID: bd.ID,
			IssuedAt: b.now().UTC(), NotAfter: leaf.NotAfter.UTC(),
		})
	}
	bd.Credentials, bd.Endpoints = creds, eps
	return nil
}
