package analyze

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// InvalidGatewayCredential is Istio's IST0161.
var InvalidGatewayCredential = MessageType{"IST0161", "InvalidGatewayCredential", Error,
	"The credential referenced by the Gateway %s in namespace %s is invalid, which can cause the traffic not to work as expected."}

// analyzeGatewaySecrets follows Istio's gateway.SecretAnalyzer: a Gateway's
// selector must match a pod (IST0101), and each server's credentialName
// must name a Secret in the namespace of the gateway's workload (IST0101)
// holding a certificate and key, the certificate valid now (IST0161).
// Credentials are only checked when the input has every Secret
// (Input.SecretsComplete).
func analyzeGatewaySecrets(c *context) {
	if !c.in.SecretsComplete {
		return
	}
	for _, r := range c.in.Config.List(config.Gateway) {
		gw := r.Spec.(*networking.Gateway)
		sel := selector(gw.GetSelector())
		ns, found := "", false
		for _, p := range c.in.Pods {
			if p.Kind == "Pod" && sel.matches(p.Labels) {
				ns, found = p.Namespace, true
				break
			}
		}
		if !found {
			c.report(newMessage(ReferencedResourceNotFound, refOf(r), "selector", sel.String()))
			continue
		}
		for _, s := range gw.GetServers() {
			cn := s.GetTls().GetCredentialName()
			if cn == "" {
				continue
			}
			sns, name := shortOrFullName(ns, cn)
			var secret *Secret
			for _, sec := range c.in.Secrets {
				if sec.Namespace == sns && sec.Name == name {
					secret = sec
					break
				}
			}
			if secret == nil {
				c.report(newMessage(ReferencedResourceNotFound, refOf(r), "credentialName", cn))
				continue
			}
			if validCredential(secret.Data) != nil {
				c.report(newMessage(InvalidGatewayCredential, refOf(r), r.Name, ns))
			}
		}
	}
}

// validCredential is what istiod requires of a gateway's Secret: a
// certificate and key under cert/key or tls.crt/tls.key, the first PEM
// block's certificates valid now.
func validCredential(data map[string][]byte) error {
	var cert []byte
	switch {
	case len(data["cert"]) > 0 && len(data["key"]) > 0:
		cert = data["cert"]
	case len(data["tls.crt"]) > 0 && len(data["tls.key"]) > 0:
		cert = data["tls.crt"]
	default:
		return errors.New("no certificate and key")
	}
	block, _ := pem.Decode(cert)
	if block == nil {
		return errors.New("pem decode failed")
	}
	certs, err := x509.ParseCertificates(block.Bytes)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, c := range certs {
		if now.After(c.NotAfter) || now.Before(c.NotBefore) {
			return errors.New("certificate is expired or not yet valid")
		}
	}
	return nil
}
