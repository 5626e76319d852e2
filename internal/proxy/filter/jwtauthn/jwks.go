package jwtauthn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// MaxJWKSSize bounds a JWKS document, inline or fetched.
const MaxJWKSSize = 1 << 20

// minRSABits is the smallest RSA modulus accepted in a JWKS.
const minRSABits = 2048

// key is one usable public key of a JWKS.
type key struct {
	kid string
	alg string // the JWK's "alg", "" when it has none
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// KeySet is the parsed public keys of one JWKS.
type KeySet struct {
	keys []key
}

// Len is the number of usable keys.
func (s *KeySet) Len() int { return len(s.keys) }

// ParseJWKS parses a JSON Web Key Set. Keys it cannot use (symmetric keys,
// unknown types, malformed members, RSA moduli under 2048 bits) are skipped
// as Envoy skips them; a set without a single usable key is an error.
func ParseJWKS(doc []byte) (*KeySet, error) {
	if len(doc) > MaxJWKSSize {
		return nil, fmt.Errorf("jwks: %d bytes, more than the %d allowed", len(doc), MaxJWKSSize)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New("jwks: no \"keys\" member")
	}
	ks := &KeySet{}
	var skipped []string
	for i, raw := range set.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
			continue
		}
		ks.keys = append(ks.keys, k)
	}
	if len(ks.keys) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("jwks: no usable key (%s)", skipped[0])
		}
		return nil, errors.New("jwks: no keys")
	}
	return ks, nil
}

func parseJWK(raw json.RawMessage) (key, error) {
	var kty struct {
		Kty string `json:"kty"`
	}
	if json.Unmarshal(raw, &kty) == nil && kty.Kty == "oct" {
		return key{}, errors.New("symmetric (oct) key: HMAC is not supported")
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return key{}, err
	}
	if !jwk.Valid() {
		return key{}, errors.New("invalid key")
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return key{}, fmt.Errorf("use %q is not \"sig\"", jwk.Use)
	}
	pub := jwk.Public()
	if !pub.Valid() {
		return key{}, errors.New("not an asymmetric key")
	}
	k := key{kid: jwk.KeyID, alg: jwk.Algorithm}
	switch p := pub.Key.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return key{}, fmt.Errorf("RSA key of %d bits, fewer than %d", p.N.BitLen(), minRSABits)
		}
		k.pub = p
	case *ecdsa.PublicKey:
		k.pub = p
	case ed25519.PublicKey:
		k.pub = p
	default:
		return key{}, fmt.Errorf("key type %T is not supported", pub.Key)
	}
	return k, nil
}

// fits reports whether k can verify a signature made with alg.
func (k *key) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch p := k.pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return p.Curve == elliptic.P256()
		case "ES384":
			return p.Curve == elliptic.P384()
		case "ES512":
			return p.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// verify checks t's signature against the set as jwt_verify_lib does:
// every key whose kid (when both have one) and alg fit is tried; none
// fitting is StatusKidAlgMismatch, none verifying StatusVerificationFail.
func (s *KeySet) verify(t *token) Status {
	matched := false
	for i := range s.keys {
		k := &s.keys[i]
		if t.kid != "" && k.kid != "" && k.kid != t.kid {
			continue
		}
		if !k.fits(t.alg) {
			continue
		}
		matched = true
		if _, err := t.jws.Verify(k.pub); err == nil {
			return StatusOK
		}
	}
	if !matched {
		return StatusKidAlgMismatch
	}
	return StatusVerificationFail
}
