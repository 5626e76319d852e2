package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
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
	for _, r := range ca.st.Revoked {
		if r.ID == id.String() {
			return nil
		}
	}
	st := ca.st
	st.Revoked = append(slices.Clip(st.Revoked), Revocation{ID: id.String(), At: ca.now().UTC(), Reason: reason})
	if err := ca.store.Save(st); err != nil {
		return fmt.Errorf("ca: revoke: %w", err)
	}
	ca.st = st
	ca.log.Warn("identity revoked", "id", id.String(), "reason", reason)
	ca.notifyRevocation()
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
	if b, ok := ca.st.TokenBindings[tok]; ok {
		if b.KeySHA256 != key {
			return refuse(ErrPermissionDenied, "bootstrap token was already used with another key; issue a new token for this workload")
		}
		return nil
	}
	now := ca.now()
	st := ca.st
	st.TokenBindings = make(map[string]TokenBinding, len(ca.st.TokenBindings)+1)
	for k, b := range ca.st.TokenBindings {
		if now.Before(b.Expiry) { // expired tokens are refused anyway
			st.TokenBindings[k] = b
		}
	}
	st.TokenBindings[tok] = TokenBinding{KeySHA256: key, Expiry: expiry}
	if err := ca.store.Save(st); err != nil {
		return fmt.Errorf("ca: bind token: %w", err)
	}
	ca.st = st
	return nil
}
