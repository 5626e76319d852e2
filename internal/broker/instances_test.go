package broker

import (
	"net/http"
	"strings"
	"testing"
	"time"

	security "istio.io/api/security/v1beta1"
)

// TestProvisionRejects: every bad request gets the specification's status
// and error body, and nothing is created.
func TestProvisionRejects(t *testing.T) {
	h := newHarness(t)
	sid, pid := h.ids("reviews.default", "short-lived")
	_, schemaPlan := h.ids("reviews.default", "schema")
	_, asyncPlan := h.ids("ratings.default", "async")
	cases := []struct {
		name, query, body string
		status            int
		code              string
	}{
		{"empty body", "", "", 400, "BadRequest"},
		{"malformed JSON", "", `{"service_id":`, 400, "BadRequest"},
		{"not an object", "", `["x"]`, 400, "BadRequest"},
		{"trailing data", "", provisionBody(sid, pid) + `{}`, 400, "BadRequest"},
		{"wrong type", "", `{"service_id":1,"plan_id":"p","organization_guid":"o","space_guid":"s"}`, 400, "BadRequest"},
		{"missing service_id", "", `{"plan_id":"` + pid + `","organization_guid":"o","space_guid":"s"}`, 400, "BadRequest"},
		{"empty plan_id", "", provisionBody(sid, ""), 400, "BadRequest"},
		{"missing organization_guid", "", `{"service_id":"` + sid + `","plan_id":"` + pid + `","space_guid":"s"}`, 400, "BadRequest"},
		{"missing space_guid", "", `{"service_id":"` + sid + `","plan_id":"` + pid + `","organization_guid":"o"}`, 400, "BadRequest"},
		{"unknown service", "", provisionBody("nope", pid), 400, "BadRequest"},
		{"plan of another service", "", provisionBody(sid, asyncPlan), 400, "BadRequest"},
		{"parameters not an object", "", provisionBody(sid, pid, `"parameters":[1]`), 400, "BadRequest"},
		{"context not an object", "", provisionBody(sid, pid, `"context":"x"`), 400, "BadRequest"},
		{"unknown parameter", "", provisionBody(sid, pid, `"parameters":{"size":3}`), 400, "BadRequest"},
		{"parameter of the wrong type", "", provisionBody(sid, pid, `"parameters":{"namespace":7}`), 400, "BadRequest"},
		{"plan schema: required parameter missing", "", provisionBody(sid, schemaPlan), 400, "BadRequest"},
		{"plan schema: value not in enum", "", provisionBody(sid, schemaPlan, `"parameters":{"tier":"bronze"}`), 400, "BadRequest"},
		{"maintenance_info mismatch", "", provisionBody(sid, pid, `"maintenance_info":{"version":"0.9.0"}`), 422, CodeMaintenanceInfoConflict},
		{"maintenance_info without version", "", provisionBody(sid, pid, `"maintenance_info":{}`), 400, "BadRequest"},
		{"maintenance_info for a plan without", "", provisionBody("ratings-id", asyncPlan, `"maintenance_info":{"version":"1.0.0"}`), 422, CodeMaintenanceInfoConflict},
		{"async plan without accepts_incomplete", "", provisionBody("ratings-id", asyncPlan), 422, CodeAsyncRequired},
		{"async plan with accepts_incomplete=false", "?accepts_incomplete=false", provisionBody("ratings-id", asyncPlan), 422, CodeAsyncRequired},
		{"accepts_incomplete not a boolean", "?accepts_incomplete=maybe", provisionBody(sid, pid), 400, "BadRequest"},
		{"oversized body", "", provisionBody(sid, pid, `"parameters":{"x":"`+strings.Repeat("a", maxBodyBytes)+`"}`), 413, "RequestTooLarge"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("PUT", "/v2/service_instances/inst-1"+c.query, c.body)
			if r.status != c.status || r.str("error") != c.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, c.status, c.code)
			}
			if len(h.b.st.Instances) != 0 || len(h.files()) != 0 {
				t.Fatalf("a rejected request left state behind: %d instances, files %v", len(h.b.st.Instances), h.files())
			}
		})
	}
	// With the right maintenance_info and a valid schema, it works.
	if r := h.do("PUT", "/v2/service_instances/inst-1", provisionBody(sid, schemaPlan, `"parameters":{"tier":"gold"}`)); r.status != 201 {
		t.Fatalf("valid provision: %d %s", r.status, r.raw)
	}
	if r := h.do("PUT", "/v2/service_instances/inst-2", provisionBody(sid, pid, `"maintenance_info":{"version":"1.0.0"}`)); r.status != 201 {
		t.Fatalf("valid provision with maintenance_info: %d %s", r.status, r.raw)
	}
}

func TestInstanceLifecycleSync(t *testing.T) {
	h := newHarness(t)
	sid, pid := h.ids("reviews.default", "short-lived")
	_, long := h.ids("reviews.default", "long-lived")
	body := provisionBody(sid, pid, `"context":{"platform":"kubernetes","namespace":"shop"}`)

	if r := h.do("GET", "/v2/service_instances/i1", ""); r.status != 404 {
		t.Fatalf("GET before provisioning: %d", r.status)
	}
	if r := h.do("PUT", "/v2/service_instances/i1", body); r.status != 201 {
		t.Fatalf("provision: %d %s", r.status, r.raw)
	}
	pol, found := h.policy("i1")
	if !found {
		t.Fatal("no AuthorizationPolicy after a synchronous 201")
	}
	spec := pol.Spec.(*security.AuthorizationPolicy)
	if spec.GetAction() != security.AuthorizationPolicy_DENY || spec.GetSelector().GetMatchLabels()["app"] != "reviews" ||
		spec.GetRules()[0].GetFrom()[0].GetSource().GetPrincipals()[0] != "cluster.local/ns/shop/sa/osb-"+shortID("i1")+"-*" {
		t.Fatalf("policy: %v", spec)
	}
	// Identical: 200. Different: 409.
	if r := h.do("PUT", "/v2/service_instances/i1", body); r.status != 200 {
		t.Fatalf("identical provision: %d %s", r.status, r.raw)
	}
	if r := h.do("PUT", "/v2/service_instances/i1", provisionBody(sid, long)); r.status != 409 || r.str("error") != "Conflict" {
		t.Fatalf("conflicting provision: %d %s", r.status, r.raw)
	}
	if r := h.do("PUT", "/v2/service_instances/i1", provisionBody(sid, pid, `"parameters":{"namespace":"other"}`)); r.status != 409 {
		t.Fatalf("conflicting parameters: %d %s", r.status, r.raw)
	}
	r := h.do("GET", "/v2/service_instances/i1?service_id="+sid, "")
	if r.status != 200 || r.str("service_id") != sid || r.str("plan_id") != pid || r.body["maintenance_info"].(map[string]any)["version"] != "1.0.0" {
		t.Fatalf("GET: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/v2/service_instances/i1?plan_id=", ""); r.status != 400 {
		t.Fatalf("GET with an empty plan_id hint: %d", r.status)
	}
	if r := h.do("GET", "/v2/service_instances/i1/last_operation", ""); r.status != 200 || r.str("state") != stateSucceeded {
		t.Fatalf("last_operation: %d %s", r.status, r.raw)
	}

	// Updates.
	updates := []struct {
		name, body string
		status     int
		code       string
	}{
		{"malformed", `{`, 400, "BadRequest"},
		{"missing service_id", `{"plan_id":"` + long + `"}`, 400, "BadRequest"},
		{"other service", `{"service_id":"ratings-id"}`, 400, "BadRequest"},
		{"unknown plan", `{"service_id":"` + sid + `","plan_id":"nope"}`, 400, "BadRequest"},
		{"maintenance mismatch", `{"service_id":"` + sid + `","maintenance_info":{"version":"2.0.0"}}`, 422, CodeMaintenanceInfoConflict},
		{"parameters outside the update schema", `{"service_id":"` + sid + `","parameters":{"namespace":"x"}}`, 400, "BadRequest"},
		{"no change", `{"service_id":"` + sid + `","plan_id":"` + pid + `"}`, 200, ""},
		{"context only", `{"service_id":"` + sid + `","context":{"platform":"kubernetes","namespace":"shop","instance_name":"x"}}`, 200, ""},
		{"plan change", `{"service_id":"` + sid + `","plan_id":"` + long + `","previous_values":{"plan_id":"` + pid + `"}}`, 200, ""},
		{"long-lived is not plan_updateable", `{"service_id":"` + sid + `","plan_id":"` + pid + `"}`, 422, "PlanChangeNotSupported"},
	}
	for _, u := range updates {
		r := h.do("PATCH", "/v2/service_instances/i1", u.body)
		if r.status != u.status || (u.code != "" && r.str("error") != u.code) {
			t.Fatalf("update %s: %d %s", u.name, r.status, r.raw)
		}
	}
	if got := h.b.st.Instances["i1"].PlanID; got != long {
		t.Fatalf("plan after the update: %s", got)
	}
	if r := h.do("PATCH", "/v2/service_instances/nope", `{"service_id":"`+sid+`"}`); r.status != 404 {
		t.Fatalf("update of an unknown instance: %d", r.status)
	}

	// Deprovisioning.
	dels := []struct {
		name, query string
		status      int
	}{
		{"no ids", "", 400},
		{"no plan_id", "?service_id=" + sid, 400},
		{"empty plan_id", "?service_id=" + sid + "&plan_id=", 400},
		{"wrong service", "?service_id=ratings-id&plan_id=" + long, 400},
		{"wrong plan", "?service_id=" + sid + "&plan_id=" + pid, 400},
		{"ok", "?service_id=" + sid + "&plan_id=" + long, 200},
		{"again: gone", "?service_id=" + sid + "&plan_id=" + long, 410},
	}
	for _, d := range dels {
		r := h.do("DELETE", "/v2/service_instances/i1"+d.query, "")
		if r.status != d.status {
			t.Fatalf("delete %s: %d %s", d.name, r.status, r.raw)
		}
	}
	if _, found := h.policy("i1"); found || len(h.files()) != 0 {
		t.Fatalf("policy still there after deprovisioning: %v", h.files())
	}
	if r := h.do("GET", "/v2/service_instances/i1", ""); r.status != 404 {
		t.Fatalf("GET after deprovisioning: %d", r.status)
	}
	if r := h.do("GET", "/v2/service_instances/i1/last_operation", ""); r.status != 410 {
		t.Fatalf("last_operation after deprovisioning: %d", r.status)
	}
	if r := h.do("GET", "/v2/service_instances/never/last_operation", ""); r.status != 404 {
		t.Fatalf("last_operation of an unknown instance: %d", r.status)
	}
	if r := h.do("DELETE", "/v2/service_instances/never?service_id=x&plan_id=y", ""); r.status != 410 {
		t.Fatalf("deprovision of an unknown instance: %d", r.status)
	}
}

func TestInstanceLifecycleAsync(t *testing.T) {
	h := newHarness(t)
	_, pid := h.ids("ratings.default", "async")
	path := "/v2/service_instances/a1"
	body := provisionBody("ratings-id", pid)

	h.mesh.freeze(true) // the store has not caught up: the operation stays in progress
	r := h.do("PUT", path+"?accepts_incomplete=true", body)
	op := r.str("operation")
	if r.status != 202 || op == "" {
		t.Fatalf("async provision: %d %s", r.status, r.raw)
	}
	if r := h.do("PUT", path+"?accepts_incomplete=true", body); r.status != 202 || r.str("operation") != op {
		t.Fatalf("re-sent PUT while provisioning: %d %s, want 202 with %s", r.status, r.raw, op)
	}
	if r := h.do("PUT", path+"?accepts_incomplete=true", provisionBody("ratings-id", pid, `"parameters":{"namespace":"x"}`)); r.status != 409 {
		t.Fatalf("different PUT while provisioning: %d", r.status)
	}
	if r := h.do("GET", path, ""); r.status != 404 {
		t.Fatalf("GET while provisioning: %d, want 404", r.status)
	}
	if r := h.do("GET", path+"/last_operation?operation="+op, ""); r.status != 200 || r.str("state") != stateInProgress {
		t.Fatalf("last_operation while provisioning: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", path+"/last_operation?operation=other", ""); r.status != 400 {
		t.Fatalf("last_operation with another operation: %d", r.status)
	}
	if r := h.do("GET", path+"/last_operation?operation=", ""); r.status != 400 {
		t.Fatalf("last_operation with an empty operation: %d", r.status)
	}
	if r := h.do("DELETE", path+"?accepts_incomplete=true&service_id=ratings-id&plan_id="+pid, ""); r.status != 422 || r.str("error") != CodeConcurrencyError {
		t.Fatalf("delete while provisioning: %d %s", r.status, r.raw)
	}
	if r := h.do("PUT", path+"/service_bindings/b1?accepts_incomplete=true", `{"service_id":"ratings-id","plan_id":"`+pid+`"}`); r.status != 422 || r.str("error") != CodeConcurrencyError {
		t.Fatalf("bind while provisioning: %d %s", r.status, r.raw)
	}
	h.mesh.freeze(false)
	if r := h.poll(path, op); r.str("state") != stateSucceeded {
		t.Fatalf("provision ended %s", r.raw)
	}
	if r := h.do("GET", path, ""); r.status != 200 {
		t.Fatalf("GET after provisioning: %d", r.status)
	}

	// Deprovision: 202, re-sent DELETE 202 with the same operation, then 410 from last_operation.
	h.mesh.freeze(true)
	del := path + "?accepts_incomplete=true&service_id=ratings-id&plan_id=" + pid
	r = h.do("DELETE", del, "")
	op = r.str("operation")
	if r.status != 202 || op == "" {
		t.Fatalf("async deprovision: %d %s", r.status, r.raw)
	}
	if r := h.do("DELETE", del, ""); r.status != 202 || r.str("operation") != op {
		t.Fatalf("re-sent DELETE: %d %s", r.status, r.raw)
	}
	if r := h.do("DELETE", path+"?service_id=ratings-id&plan_id="+pid, ""); r.status != 422 {
		t.Fatalf("synchronous DELETE during an async one: %d", r.status)
	}
	if r := h.do("PATCH", path+"?accepts_incomplete=true", `{"service_id":"ratings-id","parameters":{}}`); r.status != 422 || r.str("error") != CodeConcurrencyError {
		t.Fatalf("update while deprovisioning: %d %s", r.status, r.raw)
	}
	h.mesh.freeze(false)
	if r := h.poll(path, op); r.status != 410 {
		t.Fatalf("last_operation after an async deprovision: %d %s, want 410", r.status, r.raw)
	}
	if len(h.files()) != 0 {
		t.Fatalf("files left: %v", h.files())
	}
}

// TestAsyncUpdateBlocksFetch: an instance being updated answers GET with
// 422 ConcurrencyError; an identical re-sent PATCH gets the same operation.
func TestAsyncUpdateBlocksFetch(t *testing.T) {
	h := newHarness(t)
	sid, pid := h.ids("reviews.default", "short-lived")
	_, long := h.ids("reviews.default", "long-lived")
	if r := h.do("PUT", "/v2/service_instances/u1", provisionBody(sid, pid)); r.status != 201 {
		t.Fatal(r.raw)
	}
	h.mesh.freeze(true)
	upd := `{"service_id":"` + sid + `","plan_id":"` + long + `"}`
	r := h.do("PATCH", "/v2/service_instances/u1?accepts_incomplete=true", upd)
	op := r.str("operation")
	if r.status != 202 || op == "" {
		t.Fatalf("async update: %d %s", r.status, r.raw)
	}
	if r := h.do("PATCH", "/v2/service_instances/u1?accepts_incomplete=true", upd); r.status != 202 || r.str("operation") != op {
		t.Fatalf("re-sent PATCH: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/v2/service_instances/u1", ""); r.status != 422 || r.str("error") != CodeConcurrencyError {
		t.Fatalf("GET while updating: %d %s", r.status, r.raw)
	}
	h.mesh.freeze(false)
	if r := h.poll("/v2/service_instances/u1", op); r.str("state") != stateSucceeded {
		t.Fatalf("update ended: %s", r.raw)
	}
	if r := h.do("GET", "/v2/service_instances/u1", ""); r.status != 200 || r.str("plan_id") != long {
		t.Fatalf("GET after the update: %s", r.raw)
	}
}

// TestStoreTimeout: when the config store never takes the policy, a
// synchronous provision fails with 500 and leaves nothing behind; an
// asynchronous one ends "failed" and orphan mitigation removes it.
func TestStoreTimeout(t *testing.T) {
	h := newHarness(t)
	h.b.policy.timeout = 100 * time.Millisecond
	sid, pid := h.ids("reviews.default", "short-lived")
	h.mesh.freeze(true)
	if r := h.do("PUT", "/v2/service_instances/t1", provisionBody(sid, pid)); r.status != http.StatusInternalServerError {
		t.Fatalf("sync provision against a stuck store: %d %s", r.status, r.raw)
	}
	if len(h.b.st.Instances) != 0 || len(h.files()) != 0 {
		t.Fatalf("a failed provision left %d instances, files %v", len(h.b.st.Instances), h.files())
	}
	r := h.do("PUT", "/v2/service_instances/t2?accepts_incomplete=true", provisionBody(sid, pid))
	if r := h.poll("/v2/service_instances/t2", r.str("operation")); r.str("state") != stateFailed {
		t.Fatalf("async provision against a stuck store: %s", r.raw)
	}
	if len(h.files()) != 0 {
		t.Fatalf("a failed provision left files %v", h.files())
	}
	h.mesh.freeze(false)
	if r := h.do("DELETE", "/v2/service_instances/t2?service_id="+sid+"&plan_id="+pid, ""); r.status != 200 {
		t.Fatalf("orphan mitigation: %d %s", r.status, r.raw)
	}
}
