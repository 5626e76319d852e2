package agent

import (
	"bytes"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// TestSecretWireMatchesGenerated: the SDS secrets are byte for byte what
// go-control-plane's generated Secret encodes.
func TestSecretWireMatchesGenerated(t *testing.T) {
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	pems := [][]byte{nil, {}, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), bytes.Repeat([]byte("k"), 300)}
	for _, name := range []string{"", WorkloadSecret, RootSecret} {
		for _, a := range pems {
			for _, b := range pems {
				want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{
					TlsCertificate: &tlsv3.TlsCertificate{CertificateChain: inline(a), PrivateKey: inline(b)}}})
				if got := tlsCertificateSecret(name, a, b); !bytes.Equal(got, want) {
					t.Errorf("tls_certificate %q %d %d:\n got %x\nwant %x", name, len(a), len(b), got, want)
				}
			}
			want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(a)}}})
			if got := validationContextSecret(name, a); !bytes.Equal(got, want) {
				t.Errorf("validation_context %q %d:\n got %x\nwant %x", name, len(a), got, want)
			}
		}
	}
}
