// Package token issues and verifies Mast bootstrap tokens: compact ES256 JWS
// tokens that prove one SPIFFE identity to the CA outside Kubernetes.
//
// A token carries sub (the SPIFFE ID), iss, aud (the trust domain), iat and
// exp, and names its signing key in the kid header. The verifier knows one
// key; rotating that key revokes every token signed by an earlier one.
package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Issuer is the iss claim of every bootstrap token.
const Issuer = "mast-ca"

// MaxLen bounds the size of a token accepted by Verify; bootstrap tokens are
// a few hundred bytes.
const MaxLen = 4096

// Leeway is the clock skew tolerated for exp and iat.
const Leeway = time.Minute

// Key is an ECDSA P-256 token signing key and its key ID.
type Key struct {
	// ID is the kid header value: a digest of the public key.
	ID   string
	priv *ecdsa.PrivateKey
}

// Claims are the verified contents of a token.
type Claims struct {
	Subject  spiffeid.ID
	IssuedAt time.Time
	Expiry   time.Time
	KeyID    string
}

// GenerateKey returns a fresh P-256 signing key.
func GenerateKey() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token: generate key: %w", err)
	}
	return newKey(priv)
}

// ParseKeyPEM decodes a key written by Key.MarshalPEM.
func ParseKeyPEM(data []byte) (*Key, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("token: key: no PEM block of type PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token: key: %w", err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, errors.New("token: key: not an ECDSA P-256 key")
	}
	return newKey(priv)
}

func newKey(priv *ecdsa.PrivateKey) (*Key, error) {
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("token: key: %w", err)
	}
	sum := sha256.Sum256(spki)
	return &Key{ID: base64.RawURLEncoding.EncodeToString(sum[:12]), priv: priv}, nil
}

// MarshalPEM encodes the private key as PKCS#8 PEM.
func (k *Key) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("token: key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Issue signs a token for sub, valid from iat until exp, with audience aud
// (the trust domain name).
func Issue(k *Key, sub spiffeid.ID, aud string, iat, exp time.Time) (string, error) {
	if sub.IsZero() {
		return "", errors.New("token: empty subject")
	}
	if !exp.After(iat) {
		return "", fmt.Errorf("token: expiry %s is not after issue time %s", exp, iat)
	}
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.ES256,
		Key:       jose.JSONWebKey{Key: k.priv, KeyID: k.ID},
	}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("token: signer: %w", err)
	}
	claims := jwt.Claims{
		Issuer:   Issuer,
		Subject:  sub.String(),
		Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(iat),
		Expiry:   jwt.NewNumericDate(exp),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// Verify checks that raw is a token signed by k for audience aud, valid at
// now, and returns its claims. Errors say why the token is refused.
func Verify(raw string, k *Key, aud string, now time.Time) (Claims, error) {
	if len(raw) > MaxLen {
		return Claims{}, fmt.Errorf("token: %d bytes exceeds the limit of %d", len(raw), MaxLen)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return Claims{}, fmt.Errorf("token: malformed: %w", err)
	}
	if len(tok.Headers) != 1 {
		return Claims{}, errors.New("token: want exactly one signature")
	}
	kid := tok.Headers[0].KeyID
	if kid != k.ID {
		return Claims{}, fmt.Errorf("token: signed by unknown key %q (rotated out or foreign)", kid)
	}
	var c jwt.Claims
	if err := tok.Claims(&k.priv.PublicKey, &c); err != nil {
		return Claims{}, fmt.Errorf("token: signature: %w", err)
	}
	if c.Expiry == nil || c.IssuedAt == nil {
		return Claims{}, errors.New("token: exp and iat claims are required")
	}
	if err := c.ValidateWithLeeway(jwt.Expected{
		Issuer:      Issuer,
		AnyAudience: jwt.Audience{aud},
		Time:        now,
	}, Leeway); err != nil {
		return Claims{}, fmt.Errorf("token: %w (exp %s)", err, c.Expiry.Time().UTC().Format(time.RFC3339))
	}
	sub, err := spiffeid.FromString(c.Subject)
	if err != nil {
		return Claims{}, fmt.Errorf("token: sub %q: %w", c.Subject, err)
	}
	return Claims{
		Subject:  sub,
		IssuedAt: c.IssuedAt.Time(),
		Expiry:   c.Expiry.Time(),
		KeyID:    kid,
	}, nil
}
