package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// RotateOptions shape a root rotation. Zero values take safe defaults.
//
// The scheme has three phases and no cross-signing:
//
//  1. trust: from the start, every bundle the CA hands out holds the old and
//     the new root, while the old root still signs;
//  2. switch: after Propagation, the new root signs; both are still trusted;
//  3. retire: after Overlap (from the start), the old root leaves the bundle.
//
// No request fails if, at the switch, every proxy has fetched a bundle with
// the new root (it renewed at least once during Propagation), and, at
// retirement, no certificate signed by the old root is still in use. Leaves
// signed by the old root during the rotation never outlive its retirement
// (their lifetime is capped), so only leaves issued before the rotation
// started matter.
type RotateOptions struct {
	// Propagation is how long the new root is trusted before it signs.
	// Default MaxTTL: a proxy must renew before its certificate expires, so
	// by then every live proxy has received the new bundle. With proxies that
	// renew at half of a 24h lifetime, 12h suffices.
	Propagation time.Duration
	// Overlap is how long, from the start, the old root stays trusted; it
	// must exceed Propagation. Default Propagation + MaxTTL.
	Overlap time.Duration
}

// Rotation is the schedule of a started rotation.
type Rotation struct {
	NewRoot *x509.Certificate
	// SwitchAt is when the new root starts signing.
	SwitchAt time.Time
	// RetireAt is when the old root stops being trusted.
	RetireAt time.Time
}

// RotateRoot starts a rotation to a freshly generated self-signed root and
// persists its schedule (a restart resumes it). Only one rotation runs at a
// time. A plug-in CA is rotated by its owner: put both roots in PluginRoot
// for the overlap, then replace PluginCert/PluginKey and restart.
func (ca *CA) RotateRoot(opts RotateOptions) (Rotation, error) {
	if opts.Propagation == 0 {
		opts.Propagation = ca.cfg.MaxTTL
	}
	if opts.Overlap == 0 {
		opts.Overlap = opts.Propagation + ca.cfg.MaxTTL
	}
	if opts.Propagation < 0 || opts.Overlap <= opts.Propagation {
		return Rotation{}, fmt.Errorf("ca: rotate root: Overlap %s must exceed Propagation %s (and neither be negative)",
			opts.Overlap, opts.Propagation)
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.auth.Load().plugin {
		return Rotation{}, errors.New("ca: rotate root: a plug-in CA is rotated by replacing its files")
	}
	now := ca.now()
	var a *authority
	var old, next RootState
	_, err := ca.commitLocked(func(cur State) (State, bool, error) {
		st := pruneRetired(cur, now)
		if len(st.Roots) > 1 {
			return cur, false, fmt.Errorf("a rotation is in progress until %s",
				st.Roots[0].RetireAt.UTC().Format(time.RFC3339))
		}
		var err error
		if next, err = newRoot(ca.td, now, ca.cfg.RootTTL); err != nil {
			return cur, false, err
		}
		next.ActiveFrom = now.Add(opts.Propagation)
		old = st.Roots[0]
		old.RetireAt = now.Add(opts.Overlap)
		st.Roots = []RootState{old, next} // fresh slice: ca.st stays intact on failure
		if a, err = ca.build(st, false, now); err != nil {
			return cur, false, err
		}
		return st, true, nil
	})
	if err != nil {
		return Rotation{}, fmt.Errorf("ca: rotate root: %w", err)
	}
	ca.auth.Store(a)
	ca.notifyRevocation() // the new root needs its CRL
	r := Rotation{NewRoot: a.anchors[1].cert, SwitchAt: next.ActiveFrom, RetireAt: old.RetireAt}
	ca.log.Info("root rotation started", "new_root", r.NewRoot.Subject.CommonName,
		"switch_at", r.SwitchAt, "old_root_retires_at", r.RetireAt)
	return r, nil
}
