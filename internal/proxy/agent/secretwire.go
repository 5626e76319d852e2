package agent

import "google.golang.org/protobuf/encoding/protowire"

// The two SDS secrets, encoded as envoy.extensions.transport_sockets.tls.v3
// Secret with protowire (TestSecretWireMatchesGenerated compares the bytes
// with the generated type's): name = 1, tls_certificate = 2
// (certificate_chain = 1, private_key = 2), validation_context = 4
// (trusted_ca = 1); each a core.v3.DataSource with inline_bytes = 2.

func tlsCertificateSecret(name string, chainPEM, keyPEM []byte) []byte {
	var tc []byte
	tc = appendMsg(tc, 1, inlineBytes(chainPEM))
	tc = appendMsg(tc, 2, inlineBytes(keyPEM))
	return appendMsg(secretName(name), 2, tc)
}

func validationContextSecret(name string, rootsPEM []byte) []byte {
	return appendMsg(secretName(name), 4, appendMsg(nil, 1, inlineBytes(rootsPEM)))
}

func secretName(name string) []byte {
	if name == "" {
		return nil
	}
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendString(b, name)
}

// inlineBytes is a DataSource whose inline_bytes (a oneof member, so
// present even when empty) is b.
func inlineBytes(b []byte) []byte {
	return appendMsg(nil, 2, b)
}

func appendMsg(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}
