package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Revoke denies id from now on: the CA refuses to sign for it (with a token
// or a certificate) and PeerID refuses its certificates, so mastd's xDS
// server drops it at its next stream. Certificates already issued to it
// are listed in CRL, which mastd pushes to the proxies (they then refuse
// them in mTLS handshakes, both ways).
func (ca *CA) Revoke(id spiffeid.ID, reason string) error {
	if err := ca.checkWorkloadID(id); err != nil {
		return fmt.Errorf("ca: revoke: %w", err)
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	saved, err := ca.commitLocked(func(cur State) (State, bool, error) {
		for _, r := range cur.Revoked {
			if r.ID == id.String() {
				return cur, false, nil
			}
		}
		cur.Revoked = append(slices.Clip(cur.Revoked), Revocation{ID: id.String(), At: ca.now().UTC(), Reason: reason})
		return cur, true, nil
	})
	if err != nil {
		return fmt.Errorf("ca: revoke: %w", err)
	}
	if saved {
		ca.log.Warn("identity revoked", "id", id.String(), "reason", reason)
		ca.notifyRevocation()
	}
	return nil
}

// Revoked lists the revoked identities in the order they were revoked.
func (ca *CA) Revoked() []Revocation {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return slices.Clone(ca.st.Revoked)
}

func (ca *CA) isRevoked(id spiffeid.ID) bool {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	for _, r := range ca.st.Revoked {
		if r.ID == id.String() {
			return true
		}
	}
	return false
}

// bindToken ties a bootstrap token to the key of the first CSR it is used
// with: later uses must sign with the same key. A stolen token is then
// worthless once its workload has used it, and one token cannot buy many
// keys. The binding lasts until the token expires and survives restarts.
func (ca *CA) bindToken(bearer string, expiry time.Time, pub any) error {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return refuse(ErrInvalidArgument, "CSR public key: %v", err)
	}
	tokSum, keySum := sha256.Sum256([]byte(bearer)), sha256.Sum256(spki)
	tok, key := hex.EncodeToString(tokSum[:]), hex.EncodeToString(keySum[:])
	ca.mu.Lock()
	defer ca.mu.Unlock()
	_, err = ca.commitLocked(func(cur State) (State, bool, error) {
		if b, ok := cur.TokenBindings[tok]; ok {
			if b.KeySHA256 != key {
				return cur, false, refuse(ErrPermissionDenied, "bootstrap token was already used with another key; issue a new token for this workload")
			}
			return cur, false, nil
		}
		now := ca.now()
		bindings := make(map[string]TokenBinding, len(cur.TokenBindings)+1)
		for k, b := range cur.TokenBindings {
			if now.Before(b.Expiry) { // expired tokens are refused anyway
				bindings[k] = b
			}
		}
		bindings[tok] = TokenBinding{KeySHA256: key, Expiry: expiry}
		cur.TokenBindings = bindings
		return cur, true, nil
	})
	if err != nil && !errors.Is(err, ErrPermissionDenied) {
		return fmt.Errorf("ca: bind token: %w", err)
	}
	return err
}
