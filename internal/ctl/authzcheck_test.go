package ctl

import (
	"bytes"
	"testing"
)

func TestAuthzCheckTable(t *testing.T) {
	dump := `{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","dynamic_listeners":[
{"active_state":{"listener":{"name":"a","filterChains":[
 {"filters":[{"name":"envoy.filters.network.http_connection_manager","typedConfig":{"httpFilters":[
  {"name":"envoy.filters.http.rbac","typedConfig":{"rules":{"action":"DENY","policies":{
    "ns[default]-policy[deny-ratings]-rule[0]":{},"ns[default]-policy[deny-ratings]-rule[1]":{}}},
   "shadowRules":{"policies":{"istio-dry-run-ns[default]-policy[try]-rule[0]":{}}}}},
  {"name":"envoy.filters.http.rbac","typedConfig":{"rules":{"policies":{"ns[istio-system]-policy[allow-all]-rule[0]":{}}}}}]}}]},
 {"filters":[{"name":"envoy.filters.network.rbac","typedConfig":{"rules":{"action":"DENY","policies":{
    "ns[default]-policy[deny-ratings]-rule[1]":{}}}}}]}]}}}]}]}`
	rows, err := authzRows([]byte(dump))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeAuthzTable(&b, rows)
	want := `ACTION            AuthorizationPolicy      RULES
ALLOW             allow-all.istio-system   1
ALLOW (dry-run)   try.default              1
DENY              deny-ratings.default     2
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
