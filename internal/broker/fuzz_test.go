package broker

import (
	"bytes"
	"testing"
)

// FuzzDecoders feeds arbitrary bodies to the request decoders: they must
// never panic, and what they accept has its required fields and
// canonical objects.
func FuzzDecoders(f *testing.F) {
	for _, s := range []string{
		`{"service_id":"s","plan_id":"p","organization_guid":"o","space_guid":"s","parameters":{"b":1,"a":[true,null]},"context":{"platform":"kubernetes"}}`,
		`{"service_id":"s","plan_id":"p","maintenance_info":{"version":"1.0.0"},"previous_values":{"plan_id":"q"}}`,
		`{"service_id":"s","plan_id":"p","bind_resource":{"app_guid":"a","route":"r"},"app_guid":"a"}`,
		`{"predecessor_binding_id":"b0"}`,
		`{"service_id":1}`, `[]`, `{`, `{} {}`, `null`, `{"parameters":"x"}`, "\xff", `{"service_id":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, err := decodeProvision(body); err == nil {
			if r.ServiceID == "" || r.PlanID == "" || r.OrganizationGUID == "" || r.SpaceGUID == "" {
				t.Fatalf("accepted a provision without a required field: %+v", r)
			}
			checkCanonical(t, r.Parameters)
			checkCanonical(t, r.Context)
		} else if err.status != 400 {
			t.Fatalf("provision decode error with status %d", err.status)
		}
		if r, err := decodeUpdate(body); err == nil {
			if r.ServiceID == "" {
				t.Fatalf("accepted an update without service_id")
			}
			checkCanonical(t, r.Parameters)
		}
		if r, err := decodeBind(body); err == nil {
			if r.PredecessorBindingID == nil && (r.ServiceID == "" || r.PlanID == "") {
				t.Fatalf("accepted a bind without service_id or plan_id")
			}
			checkCanonical(t, r.Parameters)
			checkCanonical(t, r.BindResource)
		}
		parseOriginatingIdentity(string(body))
		checkAPIVersion(string(body))
	})
}

// checkCanonical: a canonical object re-canonicalises to itself.
func checkCanonical(t *testing.T, obj []byte) {
	if obj == nil {
		return
	}
	again, err := canonicalObject("x", obj)
	if err != nil || !bytes.Equal(again, obj) {
		t.Fatalf("canonical object %s is not stable: %s %v", obj, again, err)
	}
}
