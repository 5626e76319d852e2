package config

import (
	"strings"
	"testing"
)

// TestInsecureSkipVerify follows istiod's ValidateTLS
// (pkg/config/validation/agent): with insecureSkipVerify true, SIMPLE may
// not name caCertificates, credentialName or subjectAltNames, and MUTUAL
// may not name caCertificates or subjectAltNames. istiod rejects these
// (an error, not a warning), and so does Mast, naming the field.
func TestInsecureSkipVerify(t *testing.T) {
	for _, tc := range []struct {
		name, tls, want string
	}{
		{"SIMPLE with subjectAltNames", `{mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: [reviews.default.svc]}`,
			"cannot specify caCertificates, credentialName or subjectAltNames when insecureSkipVerify is true"},
		{"SIMPLE with caCertificates", `{mode: SIMPLE, insecureSkipVerify: true, caCertificates: /etc/ca.pem}`,
			"cannot specify caCertificates, credentialName or subjectAltNames when insecureSkipVerify is true"},
		{"SIMPLE with credentialName", `{mode: SIMPLE, insecureSkipVerify: true, credentialName: test}`,
			"cannot specify caCertificates, credentialName or subjectAltNames when insecureSkipVerify is true"},
		{"MUTUAL with subjectAltNames", `{mode: MUTUAL, insecureSkipVerify: true, clientCertificate: /c.pem, privateKey: /k.pem, subjectAltNames: [a]}`,
			"cannot specify caCertificates or subjectAltNames when insecureSkipVerify is true"},
		{"MUTUAL with credentialName (client certificate and CA alike)", `{mode: MUTUAL, insecureSkipVerify: true, credentialName: test}`, ""},
		{"SIMPLE alone", `{mode: SIMPLE, insecureSkipVerify: true}`, ""},
		{"SIMPLE with subjectAltNames, verifying", `{mode: SIMPLE, insecureSkipVerify: false, subjectAltNames: [a]}`, ""},
	} {
		_, probs := Load("dr.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    tls: `+tc.tls+`
`))
		errs := probs.Errors()
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%s: rejected: %v", tc.name, errs)
		case tc.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].String(), "spec.trafficPolicy.tls: "+tc.want)):
			t.Errorf("%s: %v, want one error on spec.trafficPolicy.tls: %q", tc.name, probs, tc.want)
		}
	}
}
