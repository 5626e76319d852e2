package token

import "crypto/ecdsa"

// PrivateKeyForTest exposes the signing key to forge tokens in tests.
func PrivateKeyForTest(k *Key) *ecdsa.PrivateKey { return k.priv }
