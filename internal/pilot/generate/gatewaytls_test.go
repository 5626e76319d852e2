package generate

import (
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networking "istio.io/api/networking/v1alpha3"
)

// TestDownstreamTLSSeveralCertificates: credentialNames give one SDS secret
// each and tlsCertificates one certificate each, MUTUAL verifying clients
// with the first one's CA, as istiod generates them.
func TestDownstreamTLSSeveralCertificates(t *testing.T) {
	unpack := func(t *testing.T, s *networking.ServerTLSSettings) *tlsv3.CommonTlsContext {
		t.Helper()
		dt := &tlsv3.DownstreamTlsContext{}
		if err := downstreamTLS(s, true, nil).GetTypedConfig().UnmarshalTo(dt); err != nil {
			t.Fatal(err)
		}
		return dt.GetCommonTlsContext()
	}
	cc := unpack(t, &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_MUTUAL, CredentialNames: []string{"gw-rsa", "gw-ecdsa"}})
	sds := cc.GetTlsCertificateSdsSecretConfigs()
	if len(sds) != 2 || sds[0].GetName() != "kubernetes://gw-rsa" || sds[1].GetName() != "kubernetes://gw-ecdsa" {
		t.Errorf("credentialNames: SDS secrets %v", sds)
	}
	if ca := cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName(); ca != "kubernetes://gw-rsa-cacert" {
		t.Errorf("credentialNames MUTUAL: CA secret %q, want the first's", ca)
	}
	cc = unpack(t, &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_MUTUAL, TlsCertificates: []*networking.ServerTLSSettings_TLSCertificate{
		{ServerCertificate: "/rsa.pem", PrivateKey: "/rsa.key", CaCertificates: "/ca.pem"}, {ServerCertificate: "/ec.pem", PrivateKey: "/ec.key"}}})
	certs := cc.GetTlsCertificates()
	if len(certs) != 2 || certs[0].GetCertificateChain().GetFilename() != "/rsa.pem" || certs[1].GetPrivateKey().GetFilename() != "/ec.key" {
		t.Errorf("tlsCertificates: %v", certs)
	}
	if ca := cc.GetValidationContext().GetTrustedCa().GetFilename(); ca != "/ca.pem" {
		t.Errorf("tlsCertificates MUTUAL: trusted CA %q", ca)
	}
}
