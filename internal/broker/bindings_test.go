package broker

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"slices"
	"testing"
	"time"

	security "istio.io/api/security/v1beta1"
)

func bindBody(sid, pid string, extra ...string) string {
	s := `{"service_id":"` + sid + `","plan_id":"` + pid + `"`
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

// notPrincipals returns the principals the instance's policy lets through.
func (h *harness) notPrincipals(iid string) []string {
	pol, found := h.policy(iid)
	if !found {
		h.t.Fatalf("instance %s has no policy", iid)
	}
	return pol.Spec.(*security.AuthorizationPolicy).GetRules()[0].GetFrom()[0].GetSource().GetNotPrincipals()
}

func TestBindingLifecycle(t *testing.T) {
	h := newHarness(t)
	sid, pid := h.ids("reviews.default", "short-lived")
	if r := h.do("PUT", "/v2/service_instances/i1", provisionBody(sid, pid)); r.status != 201 {
		t.Fatal(r.raw)
	}
	bpath := "/v2/service_instances/i1/service_bindings/b1"

	rejects := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"unknown instance", "/v2/service_instances/nope/service_bindings/b1", bindBody(sid, pid), 404, "NotFound"},
		{"malformed", bpath, `{"service_id":`, 400, "BadRequest"},
		{"missing service_id", bpath, `{"plan_id":"` + pid + `"}`, 400, "BadRequest"},
		{"missing plan_id", bpath, `{"service_id":"` + sid + `"}`, 400, "BadRequest"},
		{"other plan", bpath, bindBody(sid, "other"), 400, "BadRequest"},
		{"other service", bpath, bindBody("ratings-id", pid), 400, "BadRequest"},
		{"empty app_guid", bpath, bindBody(sid, pid, `"app_guid":""`), 400, "BadRequest"},
		{"bind_resource not an object", bpath, bindBody(sid, pid, `"bind_resource":"app"`), 400, "BadRequest"},
		{"bind_resource app_guid wrong type", bpath, bindBody(sid, pid, `"bind_resource":{"app_guid":3}`), 400, "BadRequest"},
		{"unknown parameter", bpath, bindBody(sid, pid, `"parameters":{"ttl":"1h"}`), 400, "BadRequest"},
		{"parameter of the wrong type", bpath, bindBody(sid, pid, `"parameters":{"client_certificate":"yes"}`), 400, "BadRequest"},
		{"unknown predecessor", bpath, bindBody(sid, pid, `"predecessor_binding_id":"nope"`), 400, "BadRequest"},
	}
	for _, c := range rejects {
		r := h.do("PUT", c.path, c.body)
		if r.status != c.status || r.str("error") != c.code {
			t.Fatalf("%s: %d %s", c.name, r.status, r.raw)
		}
		if len(h.b.st.Bindings) != 0 || len(h.b.st.Certificates) != 0 {
			t.Fatalf("%s left a binding or a certificate behind", c.name)
		}
	}

	body := bindBody(sid, pid, `"bind_resource":{"app_guid":"app-1"}`, `"context":{"platform":"cloudfoundry"}`)
	r := h.do("PUT", bpath, body)
	if r.status != 201 {
		t.Fatalf("bind: %d %s", r.status, r.raw)
	}
	var got bindingBody
	if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
		t.Fatal(err)
	}
	c := got.Credentials
	wantPrincipal := "spiffe://cluster.local/ns/osb/sa/" + serviceAccount("i1", "b1")
	if c == nil || c.Host != "reviews.default.svc.cluster.local" || c.Port != 9080 || c.Protocol != "http" ||
		c.SPIFFEID != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" || !slices.Equal(c.Addresses, []string{"127.0.1.5:9080"}) ||
		c.ClientSPIFFEID != wantPrincipal || c.URI != "http://reviews.default.svc.cluster.local:9080" {
		t.Fatalf("credentials: %+v", c)
	}
	if got.Metadata == nil || got.Metadata.ExpiresAt == "" || got.Metadata.RenewBefore == "" || c.ExpiresAt != got.Metadata.ExpiresAt {
		t.Fatalf("metadata: %+v", got.Metadata)
	}
	expires, err := time.Parse(timeFormat, got.Metadata.ExpiresAt)
	if err != nil {
		t.Fatalf("expires_at %q is not yyyy-mm-ddThh:mm:ss.sZ: %v", got.Metadata.ExpiresAt, err)
	}
	if d := time.Until(expires); d < 50*time.Minute || d > 61*time.Minute {
		t.Fatalf("the short-lived plan's certificate expires in %s", d)
	}
	// The certificate is the mesh CA's, for the binding's identity, and the key matches.
	pair, err := tls.X509KeyPair([]byte(c.ClientCertificate), []byte(c.ClientKey))
	if err != nil {
		t.Fatalf("certificate and key: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(c.CACertificate)) {
		t.Fatal("ca_certificate holds no certificate")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not chain to the mesh CA: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantPrincipal {
		t.Fatalf("certificate identity %v", leaf.URIs)
	}
	if block, _ := pem.Decode([]byte(c.ClientKey)); block == nil || block.Type != "PRIVATE KEY" {
		t.Fatal("client_key is not a PKCS#8 PEM key")
	}
	if np := h.notPrincipals("i1"); !slices.Equal(np, []string{principal(wantPrincipal)}) {
		t.Fatalf("policy admits %v", np)
	}

	// Idempotency and conflicts.
	if r := h.do("PUT", bpath, body); r.status != 200 || r.body["credentials"] == nil {
		t.Fatalf("identical bind: %d %s", r.status, r.raw)
	}
	if r := h.do("PUT", bpath, bindBody(sid, pid, `"parameters":{"client_certificate":false}`)); r.status != 409 {
		t.Fatalf("conflicting bind: %d %s", r.status, r.raw)
	}
	r = h.do("GET", bpath, "")
	if r.status != 200 || r.body["credentials"] == nil || r.body["parameters"] == nil {
		t.Fatalf("GET binding: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/v2/service_instances/i1/service_bindings/nope", ""); r.status != 404 {
		t.Fatalf("GET unknown binding: %d", r.status)
	}
	if r := h.do("GET", bpath+"/last_operation", ""); r.status != 200 || r.str("state") != stateSucceeded {
		t.Fatalf("binding last_operation: %d %s", r.status, r.raw)
	}

	// A second binding without a certificate (a consumer inside the mesh).
	r = h.do("PUT", "/v2/service_instances/i1/service_bindings/b2", bindBody(sid, pid, `"parameters":{"client_certificate":false}`))
	if r.status != 201 || r.body["credentials"].(map[string]any)["client_certificate"] != nil || r.body["metadata"] != nil {
		t.Fatalf("bind without certificate: %d %s", r.status, r.raw)
	}
	if np := h.notPrincipals("i1"); len(np) != 2 {
		t.Fatalf("policy admits %v, want both bindings", np)
	}

	// Rotation: a successor of b1 with its parameters.
	r = h.do("PUT", "/v2/service_instances/i1/service_bindings/b3", `{"predecessor_binding_id":"b1"}`)
	if r.status != 201 {
		t.Fatalf("rotation: %d %s", r.status, r.raw)
	}
	if np := h.notPrincipals("i1"); len(np) != 3 {
		t.Fatalf("after rotation the policy admits %v, want predecessor and successor", np)
	}

	// Unbinding.
	unbinds := []struct {
		name, path string
		status     int
	}{
		{"no ids", bpath, 400},
		{"wrong plan", bpath + "?service_id=" + sid + "&plan_id=x", 400},
		{"unknown binding", "/v2/service_instances/i1/service_bindings/nope?service_id=" + sid + "&plan_id=" + pid, 410},
		{"unknown instance", "/v2/service_instances/nope/service_bindings/b1?service_id=" + sid + "&plan_id=" + pid, 410},
		{"ok", bpath + "?service_id=" + sid + "&plan_id=" + pid, 200},
		{"again", bpath + "?service_id=" + sid + "&plan_id=" + pid, 410},
	}
	for _, u := range unbinds {
		if r := h.do("DELETE", u.path, ""); r.status != u.status {
			t.Fatalf("unbind %s: %d %s", u.name, r.status, r.raw)
		}
	}
	if np := h.notPrincipals("i1"); slices.Contains(np, principal(wantPrincipal)) || len(np) != 2 {
		t.Fatalf("after unbinding the policy admits %v", np)
	}
	if r := h.do("GET", bpath+"/last_operation", ""); r.status != 410 {
		t.Fatalf("last_operation of an unbound binding: %d", r.status)
	}
	if r := h.do("GET", bpath, ""); r.status != 404 {
		t.Fatalf("GET of an unbound binding: %d", r.status)
	}
	// The certificate list shows b1's certificate revoked, b3's live.
	r = h.do("GET", "/mast/v1/certificates", "")
	var list struct{ Certificates []IssuedCertificate }
	json.Unmarshal([]byte(r.raw), &list)
	revoked := map[string]bool{}
	for _, c := range list.Certificates {
		revoked[c.BindingID] = c.RevokedAt != nil
	}
	if len(list.Certificates) != 2 || !revoked["b1"] || revoked["b3"] {
		t.Fatalf("certificates: %s", r.raw)
	}

	// Deprovisioning revokes the remaining bindings with the policy.
	if r := h.do("DELETE", "/v2/service_instances/i1?service_id="+sid+"&plan_id="+pid, ""); r.status != 200 {
		t.Fatalf("deprovision: %d %s", r.status, r.raw)
	}
	if len(h.b.st.Bindings) != 0 {
		t.Fatalf("deprovisioning left %d bindings", len(h.b.st.Bindings))
	}
	// b3's certificate is still valid: the policy stays, denying every
	// identity of the instance, until it expires.
	if np := h.notPrincipals("i1"); len(np) != 0 {
		t.Fatalf("after deprovisioning the policy admits %v", np)
	}
	h.b.sweepRetired()
	if _, found := h.policy("i1"); !found {
		t.Fatal("the policy was removed while a certificate of the instance is valid")
	}
	h.b.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	h.b.sweepRetired()
	if len(h.files()) != 0 || len(h.b.st.Retired) != 0 {
		t.Fatalf("after its certificates expired the policy is still there: %v", h.files())
	}
	if r := h.do("GET", "/v2/service_instances/i1/service_bindings/b3/last_operation", ""); r.status != 410 {
		t.Fatalf("binding last_operation after deprovisioning: %d", r.status)
	}
}

func TestBindingAsync(t *testing.T) {
	h := newHarness(t)
	_, pid := h.ids("ratings.default", "async")
	ipath := "/v2/service_instances/a1"
	r := h.do("PUT", ipath+"?accepts_incomplete=true", provisionBody("ratings-id", pid))
	h.poll(ipath, r.str("operation"))
	bpath := ipath + "/service_bindings/b1"
	if r := h.do("PUT", bpath, bindBody("ratings-id", pid)); r.status != 422 || r.str("error") != CodeAsyncRequired {
		t.Fatalf("sync bind on an async plan: %d %s", r.status, r.raw)
	}
	h.mesh.freeze(true)
	r = h.do("PUT", bpath+"?accepts_incomplete=true", bindBody("ratings-id", pid))
	op := r.str("operation")
	if r.status != 202 || op == "" || r.body["credentials"] != nil {
		t.Fatalf("async bind: %d %s (202 must not carry credentials)", r.status, r.raw)
	}
	if r := h.do("PUT", bpath+"?accepts_incomplete=true", bindBody("ratings-id", pid)); r.status != 202 || r.str("operation") != op {
		t.Fatalf("re-sent bind: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", bpath, ""); r.status != 404 {
		t.Fatalf("GET while binding: %d", r.status)
	}
	if r := h.do("DELETE", bpath+"?accepts_incomplete=true&service_id=ratings-id&plan_id="+pid, ""); r.status != 422 || r.str("error") != CodeConcurrencyError {
		t.Fatalf("unbind while binding: %d %s", r.status, r.raw)
	}
	h.mesh.freeze(false)
	if r := h.poll(bpath, op); r.str("state") != stateSucceeded {
		t.Fatalf("bind ended: %s", r.raw)
	}
	if r := h.do("GET", bpath, ""); r.status != 200 || r.body["credentials"] == nil {
		t.Fatalf("GET after binding: %d %s", r.status, r.raw)
	}
	if r := h.do("DELETE", bpath+"?service_id=ratings-id&plan_id="+pid, ""); r.status != 422 || r.str("error") != CodeAsyncRequired {
		t.Fatalf("sync unbind on an async plan: %d %s", r.status, r.raw)
	}
	r = h.do("DELETE", bpath+"?accepts_incomplete=true&service_id=ratings-id&plan_id="+pid, "")
	if r.status != 202 {
		t.Fatalf("async unbind: %d %s", r.status, r.raw)
	}
	if r := h.poll(bpath, r.str("operation")); r.status != 410 {
		t.Fatalf("last_operation after an async unbind: %d %s", r.status, r.raw)
	}
}
