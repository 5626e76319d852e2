package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
)

const reviewsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
`

func TestDecodeFillsSpecAndMeta(t *testing.T) {
	rs, err := Decode("vs.yaml", []byte(reviewsVS))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("got %d resources, want 1", len(rs))
	}
	r := rs[0]
	if r.Key() != (Key{Kind: VirtualService, Namespace: "default", Name: "reviews"}) {
		t.Errorf("key = %v", r.Key())
	}
	if r.APIVersion != "networking.istio.io/v1" || r.Source != (Source{File: "vs.yaml", Line: 1}) {
		t.Errorf("apiVersion %q, source %v", r.APIVersion, r.Source)
	}
	want := &networking.VirtualService{Hosts: []string{"reviews"}, Http: []*networking.HTTPRoute{{
		Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "reviews", Subset: "v1"}}},
	}}}
	if !proto.Equal(r.Spec, want) {
		t.Errorf("spec = %v, want %v", r.Spec, want)
	}
	if got := r.Positions.Line("spec.http[0].route[0].destination.subset"); got != 12 {
		t.Errorf("line of subset = %d, want 12", got)
	}
}

func TestDecodeForms(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		check func(t *testing.T, rs []Resource)
	}{
		{
			name: "older apiVersions decode to the same kinds",
			data: strings.Replace(reviewsVS, "networking.istio.io/v1", "networking.istio.io/v1alpha3", 1) +
				"---\napiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: STRICT}}\n" +
				"---\napiVersion: telemetry.istio.io/v1alpha1\nkind: Telemetry\nmetadata: {name: t}\nspec: {}\n",
			check: func(t *testing.T, rs []Resource) {
				if len(rs) != 3 || rs[0].Kind != VirtualService || rs[1].Kind != PeerAuthentication || rs[2].Kind != Telemetry {
					t.Fatalf("got %v", rs)
				}
				if m := rs[1].Spec.(*security.PeerAuthentication).GetMtls().GetMode(); m != security.PeerAuthentication_MutualTLS_STRICT {
					t.Errorf("mode = %v", m)
				}
			},
		},
		{
			name: "JSON",
			data: `{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "ns"},
	"spec": {"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}`,
			check: func(t *testing.T, rs []Resource) {
				if len(rs) != 1 || rs[0].Namespace != "ns" || rs[0].Spec.(*networking.Gateway).Servers[0].Port.Number != 80 {
					t.Fatalf("got %v", rs)
				}
			},
		},
		{
			name: "durations, wrappers and proto field names",
			data: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: r
  traffic_policy:
    outlierDetection:
      interval: 1m30s
      base_ejection_time: 0.5s
      consecutive5xxErrors: 7
    tls:
      mode: SIMPLE
      insecureSkipVerify: true
`,
			check: func(t *testing.T, rs []Resource) {
				od := rs[0].Spec.(*networking.DestinationRule).GetTrafficPolicy().GetOutlierDetection()
				if od.GetInterval().AsDuration() != 90*time.Second || od.GetBaseEjectionTime().AsDuration() != 500*time.Millisecond {
					t.Errorf("durations = %v, %v", od.GetInterval(), od.GetBaseEjectionTime())
				}
				if od.GetConsecutive_5XxErrors().GetValue() != 7 {
					t.Errorf("consecutive5xxErrors = %v", od.GetConsecutive_5XxErrors())
				}
				if !rs[0].Spec.(*networking.DestinationRule).GetTrafficPolicy().GetTls().GetInsecureSkipVerify().GetValue() {
					t.Error("insecureSkipVerify not set")
				}
			},
		},
		{
			name: "kind List",
			data: "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSuffix(reviewsVS, "\n"), "\n", "\n  ") +
				"\n- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: reviews}\n  spec: {host: reviews}\n",
			check: func(t *testing.T, rs []Resource) {
				if len(rs) != 2 || rs[0].Kind != VirtualService || rs[1].Kind != DestinationRule {
					t.Fatalf("got %v", rs)
				}
				if rs[1].Source.Line != 16 {
					t.Errorf("second item line = %d, want 16", rs[1].Source.Line)
				}
			},
		},
		{
			name: "CRLF, byte order mark, empty documents and status",
			data: "\xef\xbb\xbf---\r\n# nothing\r\n---\r\n" + strings.ReplaceAll(reviewsVS, "\n", "\r\n") + "status: {}\r\n---\r\n",
			check: func(t *testing.T, rs []Resource) {
				if len(rs) != 1 || rs[0].Source.Line != 4 {
					t.Fatalf("got %v", rs)
				}
			},
		},
		{
			name: "anchors, aliases and merge keys",
			data: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: r
  labels: &l {app: reviews}
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      <<: *l
      version: v1
`,
			check: func(t *testing.T, rs []Resource) {
				got := rs[0].Spec.(*networking.DestinationRule).Subsets[0].Labels
				if got["app"] != "reviews" || got["version"] != "v1" || rs[0].Labels["app"] != "reviews" {
					t.Errorf("labels = %v / %v", got, rs[0].Labels)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Decode("f.yaml", []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, rs)
		})
	}
}

// A bad document must not hide the good ones around it, and lines count
// from the start of the file.
func TestDecodeKeepsGoodDocuments(t *testing.T) {
	data := reviewsVS + "---\n" + strings.Replace(reviewsVS, "subset: v1", "subsett: v1", 1) + "---\n" +
		strings.Replace(reviewsVS, "name: reviews", "name: ratings", 1)
	rs, err := Decode("multi.yaml", []byte(data))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v is not Problems", err)
	}
	if len(rs) != 2 || rs[0].Name != "reviews" || rs[1].Name != "ratings" {
		t.Fatalf("resources = %v", rs)
	}
	if rs[1].Source.Line != 27 {
		t.Errorf("third document line = %d, want 27", rs[1].Source.Line)
	}
	var unknown *Problem
	for i := range ps {
		if strings.Contains(ps[i].Message, `unknown field "subsett"`) {
			unknown = &ps[i]
		}
	}
	if unknown == nil {
		t.Fatalf("no unknown-field problem in %v", ps)
	}
	if unknown.Source.Line != 25 || unknown.Field != "spec.http[0].route[0].destination.subsett" || unknown.Resource.Name != "reviews" {
		t.Errorf("problem = %+v", *unknown)
	}
}

func TestDecodeRejectsAliasBomb(t *testing.T) {
	// Each level repeats an alias 200 times: 200^3 nodes from a few kilobytes.
	rep := func(alias string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(alias+", ", 200), ", ") + "]"
	}
	data := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nstatus:\n" +
		"  s: &s x-header\n" +
		"  d: &d {destination: {host: a}, headers: {request: {remove: " + rep("*s") + "}}}\n" +
		"  h: &h {route: " + rep("*d") + "}\n" +
		"spec:\n  hosts: [a]\n  http: " + rep("*h") + "\n"
	_, err := Decode("bomb.yaml", []byte(data))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || !strings.Contains(ps[0].Message, "too large") {
		t.Fatalf("err = %.300v, want one too-large problem", err)
	}
}

func TestPositionsLine(t *testing.T) {
	rs, err := Decode("vs.yaml", []byte(reviewsVS))
	if err != nil {
		t.Fatal(err)
	}
	p := rs[0].Positions
	tests := []struct {
		path string
		want int
	}{
		{"metadata.name", 4},
		{"spec.hosts[0]", 7},
		{"spec.http[0].route", 9},
		{"spec.http[0].route[0].weight", 10}, // not written: nearest written ancestor
		{"spec.http[0].routeX", 9},           // not a child of route: falls back to http[0]
		{"spec.gateways", 5},
		{"nothing", 0},
	}
	for _, tt := range tests {
		if got := p.Line(tt.path); got != tt.want {
			t.Errorf("Line(%q) = %d, want %d", tt.path, got, tt.want)
		}
	}
	if (*Positions)(nil).Line("spec") != 0 {
		t.Error("nil Positions should know no lines")
	}
}

func TestProblemString(t *testing.T) {
	p := Problem{Severity: Error, Source: Source{File: "vs.yaml", Line: 12},
		Resource: Key{Kind: VirtualService, Namespace: "default", Name: "reviews"},
		Field:    "spec.http[0].route", Message: "weights sum to 90, want 100"}
	if got, want := p.String(), "vs.yaml:12: error: VirtualService/default/reviews: spec.http[0].route: weights sum to 90, want 100"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	w := Problem{Severity: Warning, Source: Source{File: "x.yaml"}, Message: "m"}
	if got := w.String(); got != "x.yaml: warning: m" {
		t.Errorf("got %q", got)
	}
	ps := Problems{w, p}
	if !ps.HasErrors() || len(ps.Errors()) != 1 || len(ps.Warnings()) != 1 {
		t.Errorf("Errors/Warnings split wrong: %v", ps)
	}
	ps.Sort()
	if ps[0] != p || ps.Error() != p.String()+"\n"+w.String() {
		t.Errorf("sorted = %v", ps)
	}
}
