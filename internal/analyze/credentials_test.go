package analyze

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
)

func certPEM(t *testing.T, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shop.example.com"},
		NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

const credentialGateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-cert}
`

func codesOf(msgs []Message) string {
	var codes []string
	for _, m := range msgs {
		codes = append(codes, m.Type.Code)
	}
	return strings.Join(codes, ",")
}

// A Secret holding a current certificate and key is a valid credential; an
// expired one is not (IST0161), as istiod's SDS check.
func TestGatewayCredentialValidity(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name     string
		from, to time.Time
		want     string
	}{
		{"current", now.Add(-time.Hour), now.Add(time.Hour), ""},
		{"expired", now.Add(-2 * time.Hour), now.Add(-time.Hour), "IST0161"},
		{"not yet valid", now.Add(time.Hour), now.Add(2 * time.Hour), "IST0161"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := NewInput()
			in.Add("gw.yaml", []byte(credentialGateway))
			in.Offline()
			in.Secrets = append(in.Secrets, &Secret{Object: Object{Kind: "Secret", Namespace: "istio-system", Name: "shop-cert"},
				Data: map[string][]byte{"tls.crt": certPEM(t, c.from, c.to), "tls.key": []byte("key")}})
			if got := codesOf(Analyze(in)); got != c.want {
				t.Errorf("codes %q, want %q", got, c.want)
			}
		})
	}
}

// Without every Secret (the running mesh, Kubernetes status), credentials
// are not checked: a missing one would be a false alarm.
func TestCredentialsCheckedOnlyWithAllSecrets(t *testing.T) {
	in := NewInput()
	in.Add("gw.yaml", []byte(credentialGateway))
	in.AddDefaults()
	if got := codesOf(Analyze(in)); got != "" {
		t.Errorf("codes %q, want none", got)
	}
	in.SecretsComplete = true
	if got := codesOf(Analyze(in)); got != "IST0101" {
		t.Errorf("codes %q, want IST0101 (credentialName not found)", got)
	}
}

// A Telemetry tracing to a Lightstep provider of the mesh config is
// deprecated (IST0002), as Istio's telemetry.LightstepAnalyzer says.
func TestLightstepProviderDeprecated(t *testing.T) {
	in := NewInput()
	in.Mesh.ExtensionProviders = []*meshconfig.MeshConfig_ExtensionProvider{{Name: "ls",
		Provider: &meshconfig.MeshConfig_ExtensionProvider_Lightstep{Lightstep: &meshconfig.MeshConfig_ExtensionProvider_LightstepTracingProvider{
			Service: "ls.monitoring.svc.cluster.local", Port: 443}}}}
	in.Add("t.yaml", []byte("apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  tracing: [{providers: [{name: ls}]}]\n"))
	in.Offline()
	var got []string
	for _, m := range Analyze(in) {
		if m.Type.Code == "IST0002" {
			got = append(got, m.String())
		}
	}
	want := "Warning [IST0002] (Telemetry istio-system/mesh-default t.yaml:1) Deprecated: The Lightstep provider ls is deprecated, please migrate to OpenTelemetry provider."
	if strings.Join(got, "\n") != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
