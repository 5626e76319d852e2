package broker

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestAuthenticationAndAPIVersion(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name   string
		mod    func(*http.Request)
		status int
		code   string
	}{
		{"ok", func(*http.Request) {}, 200, ""},
		{"no credentials", func(r *http.Request) { r.Header.Del("Authorization") }, 401, "Unauthorized"},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth("platform", "nope") }, 401, "Unauthorized"},
		{"wrong user", func(r *http.Request) { r.SetBasicAuth("x", "s3cret") }, 401, "Unauthorized"},
		{"bearer instead of basic", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }, 401, "Unauthorized"},
		{"missing version", func(r *http.Request) { r.Header.Del("X-Broker-API-Version") }, 412, "PreconditionFailed"},
		{"too old", func(r *http.Request) { r.Header.Set("X-Broker-API-Version", "2.13") }, 412, "PreconditionFailed"},
		{"major 1", func(r *http.Request) { r.Header.Set("X-Broker-API-Version", "1.99") }, 412, "PreconditionFailed"},
		{"major 3", func(r *http.Request) { r.Header.Set("X-Broker-API-Version", "3.0") }, 412, "PreconditionFailed"},
		{"garbage", func(r *http.Request) { r.Header.Set("X-Broker-API-Version", "latest") }, 412, "PreconditionFailed"},
		{"minimum", func(r *http.Request) { r.Header.Set("X-Broker-API-Version", "2.14") }, 200, ""},
		{"newer minor", func(r *http.Request) { r.Header.Set("X-Broker-API-Version", "2.18") }, 200, ""},
		{"auth before version", func(r *http.Request) { r.Header.Del("Authorization"); r.Header.Del("X-Broker-API-Version") }, 401, "Unauthorized"},
		{"originating identity", func(r *http.Request) {
			r.Header.Set("X-Broker-API-Originating-Identity", "cloudfoundry "+base64.StdEncoding.EncodeToString([]byte(`{"user_id":"683ea748"}`)))
		}, 200, ""},
		{"originating identity not base64", func(r *http.Request) { r.Header.Set("X-Broker-API-Originating-Identity", "cloudfoundry !!!") }, 400, "BadRequest"},
		{"originating identity without platform", func(r *http.Request) { r.Header.Set("X-Broker-API-Originating-Identity", "eyJ9") }, 400, "BadRequest"},
		{"originating identity not an object", func(r *http.Request) {
			r.Header.Set("X-Broker-API-Originating-Identity", "kubernetes "+base64.StdEncoding.EncodeToString([]byte(`[1]`)))
		}, 400, "BadRequest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("GET", "/v2/catalog", "", c.mod)
			if r.status != c.status || (c.code != "" && r.str("error") != c.code) {
				t.Fatalf("got %d %s", r.status, r.raw)
			}
			if c.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	t.Run("request identity echoed", func(t *testing.T) {
		r := h.do("GET", "/v2/catalog", "", func(r *http.Request) { r.Header.Set("X-Broker-API-Request-Identity", "req-42") })
		if got := r.header.Get("X-Broker-API-Request-Identity"); got != "req-42" {
			t.Fatalf("X-Broker-API-Request-Identity = %q", got)
		}
	})
}

func TestBearerToken(t *testing.T) {
	h := newHarness(t)
	h.srv.Config.Handler = h.b.Handler(Auth{BearerToken: "tok"})
	if r := h.do("GET", "/v2/catalog", "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }); r.status != 200 {
		t.Fatalf("bearer: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/v2/catalog", "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer other") }); r.status != 401 {
		t.Fatalf("wrong bearer: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/v2/catalog", ""); r.status != 401 {
		t.Fatalf("basic against a bearer broker: %d", r.status)
	}
}

func TestCatalog(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/v2/catalog", "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	var cat catalogJSON
	if err := json.Unmarshal([]byte(r.raw), &cat); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range cat.Services {
		names = append(names, s.Name)
		if !s.Bindable || !s.InstancesRetrievable || !s.BindingsRetrievable || s.ID == "" || s.Description == "" || len(s.Plans) == 0 {
			t.Errorf("offering %s lacks a required field: %+v", s.Name, s)
		}
		for _, p := range s.Plans {
			if p.ID == "" || p.Name == "" || p.Description == "" {
				t.Errorf("plan %+v lacks a required field", p)
			}
			for _, sch := range []map[string]any{p.Schemas.ServiceInstance.Create.Parameters, p.Schemas.ServiceInstance.Update.Parameters, p.Schemas.ServiceBinding.Create.Parameters} {
				if sch["$schema"] == nil {
					t.Errorf("plan %s: a schema without $schema: %v", p.Name, sch)
				}
			}
		}
	}
	if strings.Join(names, ",") != "ratings.default,reviews.default" {
		t.Fatalf("offerings %v, want ratings and reviews only (details is not exported, legacy has no workloadSelector)", names)
	}
	if cat.Services[0].ID != "ratings-id" || len(cat.Services[0].Plans) != 1 || cat.Services[0].Plans[0].Name != "async" {
		t.Errorf("ratings: annotations not honoured: %+v", cat.Services[0])
	}
	if len(cat.Services[1].Plans) != 4 {
		t.Errorf("reviews has %d plans, want all 4", len(cat.Services[1].Plans))
	}
	// Ids are stable across brokers and restarts.
	sid, pid := h.ids("reviews.default", "short-lived")
	if sid != nameUUID("service/default/reviews") || pid != nameUUID("plan/"+sid+"/short-lived") {
		t.Errorf("ids %s %s are not the derived ones", sid, pid)
	}
	h.restart()
	if sid2, pid2 := h.ids("reviews.default", "short-lived"); sid2 != sid || pid2 != pid {
		t.Error("ids changed across a restart")
	}
}

func TestRoutingErrors(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		method, path string
		status       int
	}{
		{"GET", "/v2/nothing", 404},
		{"POST", "/v2/catalog", 405},
		{"POST", "/v2/service_instances/i1", 405},
		{"PUT", "/v2/service_instances/i1/last_operation", 405},
		{"PATCH", "/v2/service_instances/i1/service_bindings/b1", 405},
		{"GET", "/v2/service_instances/a%2Fb", 400},
	}
	for _, c := range cases {
		if r := h.do(c.method, c.path, ""); r.status != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, r.status, r.raw, c.status)
		}
	}
}
