package config

import (
	"strings"
	"testing"
)

// TestDelegateWarnings: delegation that istiod would drop silently is
// warned about, naming the route or the VirtualService; a used delegate is
// not.
func TestDelegateWarnings(t *testing.T) {
	rs, err := Decode("vs.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: front}
spec:
  hosts: [shop.example.com]
  http:
  - match: [{uri: {prefix: /api}}]
    delegate: {name: api, namespace: team}
  - match: [{uri: {prefix: /missing}}]
    delegate: {name: nothere}
  - match: [{uri: {prefix: /private}}]
    delegate: {name: private, namespace: team}
  - match: [{uri: {prefix: /hosted}}]
    delegate: {name: hosted, namespace: team}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: team}
spec:
  http: [{route: [{destination: {host: api}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: team}
spec:
  exportTo: ["."]
  http: [{route: [{destination: {host: api}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hosted, namespace: team}
spec:
  hosts: [hosted.example.com]
  http: [{route: [{destination: {host: api}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orphan, namespace: team}
spec:
  http: [{route: [{destination: {host: api}}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ValidateSnapshot(NewSnapshot(rs)) {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`delegate VirtualService front/nothere not found`,
		`delegate VirtualService team/private is not exported to namespace "front"`,
		`VirtualService team/hosted has hosts, so it is not a delegate`,
		`no VirtualService delegates to it`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no warning containing %q in:\n%s", want, all)
		}
	}
	if n := strings.Count(all, "no VirtualService delegates to it"); n != 1 || !strings.Contains(all, "VirtualService/team/orphan: spec.hosts") {
		t.Errorf("want one unused-delegate warning, for team/orphan:\n%s", all)
	}
	if strings.Contains(all, "team/api") {
		t.Errorf("a used, visible delegate was warned about:\n%s", all)
	}
}
