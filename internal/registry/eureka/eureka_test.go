package eureka

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/registry"
)

const goodJSON = `{"applications":{"versions__delta":"1","apps__hashcode":"OUT_OF_SERVICE_1_UP_2_","application":[
{"name":"REVIEWS","instance":[
 {"instanceId":"r1","hostName":"r1.local","app":"REVIEWS","ipAddr":"10.0.0.1","status":"UP","port":{"$":9080,"@enabled":"true"},"securePort":{"$":"9443","@enabled":"true"},
  "dataCenterInfo":{"@class":"com.netflix.appinfo.AmazonInfo","name":"Amazon","metadata":{"availability-zone":"us-east-1a","instance-id":"i-1"}},
  "metadata":{"version":"v1","protocol":"http2","service-account":"reviews","mesh-namespace":"bookinfo"},"vipAddress":"reviews,reviews.example.org","secureVipAddress":"reviews"},
 {"instanceId":"r2","hostName":"r2.local","app":"REVIEWS","ipAddr":"10.0.0.2","status":"OUT_OF_SERVICE","port":{"$":9080,"@enabled":true},"securePort":{"$":443,"@enabled":"false"},
  "dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},"metadata":{"@class":"java.util.Collections$EmptyMap"},"vipAddress":"reviews"}]},
{"name":"RATINGS","instance":{"instanceId":"t1","hostName":"ratings.internal","app":"RATINGS","ipAddr":"","status":"UP","port":{"$":"9080","@enabled":"true"},
  "dataCenterInfo":{"name":"MyOwn"},"metadata":{"region":"eu","zone":"eu-1"},"vipAddress":"ratings"}}]}}`

func TestConvertJSON(t *testing.T) {
	apps, err := DecodeApplicationsJSON([]byte(goodJSON))
	if err != nil {
		t.Fatal(err)
	}
	if got := HashCode(apps.Applications); got != "OUT_OF_SERVICE_1_UP_2_" {
		t.Errorf("hash %s", got)
	}
	s := Convert(apps.Applications, "cluster.local")
	var lines []string
	for _, svc := range s.Services {
		l := svc.Hostname + " ns=" + svc.Namespace
		for _, p := range svc.Ports {
			l += " " + p.Name + ":" + string(p.Protocol)
		}
		for _, e := range s.Endpoints[svc.Hostname] {
			l += " ep=" + e.Address + "@" + e.Locality + "/" + e.ServiceAccount
		}
		lines = append(lines, l)
	}
	want := []string{
		"ratings ns=default http:HTTP ep=ratings.internal@eu/eu-1/",
		"reviews ns=bookinfo http:HTTP2 https:HTTPS ep=10.0.0.1@us-east-1/us-east-1a/spiffe://cluster.local/ns/bookinfo/sa/reviews ep=10.0.0.1@us-east-1/us-east-1a/spiffe://cluster.local/ns/bookinfo/sa/reviews",
		"reviews.example.org ns=bookinfo http:HTTP2 ep=10.0.0.1@us-east-1/us-east-1a/spiffe://cluster.local/ns/bookinfo/sa/reviews",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if s.Service("ratings").Resolution != registry.ResolutionDNS {
		t.Error("a host name address is not DNS resolution")
	}
	// The same document through XML gives the same snapshot.
	xb, err := EncodeApplicationsXML(apps)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeApplicationsXML(xb)
	if err != nil {
		t.Fatalf("%v\n%s", err, xb)
	}
	changed, hosts := registry.Diff(s, Convert(back.Applications, "cluster.local"))
	if changed || len(hosts) != 0 {
		t.Errorf("XML round trip differs: %v %v\n%s", changed, hosts, xb)
	}
}

// A server answering badly (truncated, wrongly typed, huge, 500) never
// removes known services; the registry says it is stale and recovers.
func TestRegistryKeepsServicesOnBadAnswers(t *testing.T) {
	var mu sync.Mutex
	answer, code := goodJSON, 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a, c := answer, code
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/delta") && c == 200 && a == goodJSON {
			a = strings.Replace(goodJSON, `"application":[`, `"application":[],"x":[`, 1) // an empty delta
		}
		w.WriteHeader(c)
		w.Write([]byte(a))
	}))
	defer srv.Close()
	r, _ := New(Config{URL: srv.URL, Interval: 10 * time.Millisecond, MaxResponseBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, func() {}); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: never; status %+v", what, r.Status())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("synced", func() bool { return r.Status().Endpoints == 4 })
	before := r.Snapshot()
	for _, bad := range []struct {
		name, body string
		code       int
	}{
		{"truncated", goodJSON[:200], 200},
		{"wrong types", `{"applications":{"application":[{"name":"X","instance":[{"port":{"$":"eighty"}}]}]}}`, 200},
		{"not an object", `[1,2,3]`, 200},
		{"huge", `{"applications":{"x":"` + strings.Repeat("a", 2<<20) + `"}}`, 200},
		{"server error", `oops`, 500},
	} {
		t.Run(bad.name, func(t *testing.T) {
			mu.Lock()
			answer, code = bad.body, bad.code
			mu.Unlock()
			waitFor("stale", func() bool { return r.Status().Stale })
			if after := r.Snapshot(); after != before {
				changed, hosts := registry.Diff(before, after)
				t.Fatalf("services changed on a bad answer: %v %v %v", changed, hosts, r.Status())
			}
			mu.Lock()
			answer, code = goodJSON, 200
			mu.Unlock()
			waitFor("fresh", func() bool { return !r.Status().Stale })
			if r.Status().Endpoints != 4 {
				t.Fatalf("after recovery: %+v", r.Status())
			}
		})
	}
}

// FuzzDecodeJSON: any /apps answer in JSON decodes or fails cleanly, and
// what decodes converts to well-formed services.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{goodJSON, `{"applications":{}}`, `{"applications":{"application":{"name":"A","instance":{"port":{"$":1,"@enabled":true},"vipAddress":"a","ipAddr":"1.2.3.4","status":"UP"}}}}`,
		`{"applications":null}`, `{"applications":{"application":[null,{"instance":[null]}]}}`, goodJSON[:100]} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		apps, err := DecodeApplicationsJSON(b)
		if err != nil {
			return
		}
		check(t, apps)
	})
}

// FuzzDecodeXML is FuzzDecodeJSON for XML answers.
func FuzzDecodeXML(f *testing.F) {
	apps, _ := DecodeApplicationsJSON([]byte(goodJSON))
	good, _ := EncodeApplicationsXML(apps)
	for _, s := range []string{string(good), `<applications/>`, `<applications><application><name>A</name><instance><port enabled="true">x</port></instance></application></applications>`,
		`<applications><application><instance><metadata><a>1</a><b/></metadata><vipAddress>v</vipAddress><port enabled="true">80</port><ipAddr>1.1.1.1</ipAddr><status>UP</status></instance></application></applications>`,
		string(good[:len(good)/2])} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		apps, err := DecodeApplicationsXML(b)
		if err != nil {
			return
		}
		check(t, apps)
	})
}

func check(t *testing.T, apps *Applications) {
	full := map[string]map[string]*Instance{}
	applyDelta(full, apps)
	_ = HashCode(flatten(full))
	s := Convert(apps.Applications, "cluster.local")
	for _, svc := range s.Services {
		for _, e := range s.Endpoints[svc.Hostname] {
			if _, ok := svc.PortByNumber(e.ServicePort); !ok || e.Port == 0 || e.Port > 65535 || e.Address == "" {
				t.Fatalf("bad endpoint %+v of %+v", e, svc)
			}
		}
	}
}
