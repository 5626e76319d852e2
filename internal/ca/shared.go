package ca

import (
	"errors"
	"fmt"
	"reflect"
)

// ErrStale says that the stored state changed since this CA last read or
// wrote it: another replica sharing the store saved first. Store.Save
// returns it wrapped; the CA then reloads the state and makes its change
// again on top of it.
var ErrStale = errors.New("the stored CA state changed since this replica read it")

// maxCommitAttempts bounds how often a change is made again on top of
// another replica's newer state before giving up.
const maxCommitAttempts = 4

// commitLocked saves the state next derives from the current one and makes
// it current. When another replica saved first (ErrStale), it reloads the
// stored state and asks next again, so no replica's change is overwritten
// and each change sees the others (a revocation, a token binding, a
// rotation in progress). next returns save=false when there is nothing to
// change. ca.mu must be held.
func (ca *CA) commitLocked(next func(cur State) (st State, save bool, err error)) (bool, error) {
	for attempt := 1; ; attempt++ {
		st, save, err := next(ca.st)
		if err != nil || !save {
			return false, err
		}
		err = ca.store.Save(st)
		if err == nil {
			ca.st = st
			return true, nil
		}
		if !errors.Is(err, ErrStale) || attempt == maxCommitAttempts {
			return false, err
		}
		if _, err := ca.reloadLocked(); err != nil {
			return false, err
		}
	}
}

// Reload takes the state another replica stored (a root rotation, a
// revocation, token bindings, a new token key): mastd calls it when the
// shared store changes (on Kubernetes, the istio-ca-secret Secret). A
// change of the roots or revocations wakes RevocationChanged, so mastd
// pushes the new trust bundle and CRL to the proxies. It reports whether
// anything changed.
func (ca *CA) Reload() (bool, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.reloadLocked()
}

func (ca *CA) reloadLocked() (bool, error) {
	now := ca.now()
	st, found, err := ca.store.Load()
	if err != nil {
		return false, fmt.Errorf("ca: reload: %w", err)
	}
	if !found {
		return false, fmt.Errorf("ca: reload: the stored state is gone; keeping this replica's (it is saved again at the next change)")
	}
	if len(st.Roots) > 0 {
		st = pruneRetired(st, now)
	}
	if reflect.DeepEqual(st, ca.st) {
		return false, nil
	}
	a, err := ca.build(st, ca.auth.Load().plugin, now)
	if err != nil {
		return false, fmt.Errorf("ca: reload: %w", err)
	}
	trustChanged := !reflect.DeepEqual(st.Roots, ca.st.Roots) || !reflect.DeepEqual(st.Revoked, ca.st.Revoked)
	ca.st = st
	ca.auth.Store(a)
	ca.log.Info("CA state reloaded from the shared store (changed by another replica)",
		"roots", len(st.Roots), "revoked", len(st.Revoked))
	if trustChanged {
		ca.notifyRevocation()
	}
	return true, nil
}
