package builtin

import (
	"strings"
	"testing"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/cors"
	"github.com/mast-mesh/mast/internal/proxy/filter/fault"
)

func any(t testing.TB, typeURL string, b []byte) *anypb.Any {
	return &anypb.Any{TypeUrl: typeURL, Value: b}
}

func hf(name string, a *anypb.Any) filter.HTTPFilterConfig {
	return filter.HTTPFilterConfig{Name: name, TypedConfig: a}
}

func noRouter(*filter.HTTPFilterConfig) bool { return false }

func TestBuildHTTP(t *testing.T) {
	faultAny, _ := anypb.New(&faultv3.HTTPFault{})
	corsAny := &anypb.Any{TypeUrl: cors.TypeURL}
	badFault, _ := anypb.New(&faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(3)})
	for _, tc := range []struct {
		name    string
		filters []filter.HTTPFilterConfig
		want    []string
		err     string
	}{
		{"order kept", []filter.HTTPFilterConfig{hf("envoy.filters.http.cors", corsAny), hf("envoy.filters.http.fault", faultAny)},
			[]string{"envoy.filters.http.cors", "envoy.filters.http.fault"}, ""},
		{"configured name kept", []filter.HTTPFilterConfig{hf("my-fault", faultAny)}, []string{"my-fault"}, ""},
		{"unknown filter", []filter.HTTPFilterConfig{hf("envoy.filters.http.fault", faultAny), hf("envoy.filters.http.lua", &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"})},
			nil, `http_filters[1] "envoy.filters.http.lua": typed_config type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua: not supported`},
		{"unknown optional filter skipped", []filter.HTTPFilterConfig{{Name: "x", IsOptional: true, TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/x.Y"}}}, nil, ""},
		{"unhonoured field", []filter.HTTPFilterConfig{hf("envoy.filters.http.fault", badFault)}, nil, `http_filters[0] "envoy.filters.http.fault": max_active_faults: not supported`},
		{"disabled", []filter.HTTPFilterConfig{{Name: "envoy.filters.http.fault", Disabled: true, TypedConfig: faultAny}}, nil, `http_filters[0] "envoy.filters.http.fault": disabled: not supported`},
		{"no typed config, known name", []filter.HTTPFilterConfig{{Name: "envoy.filters.http.fault"}}, []string{"envoy.filters.http.fault"}, ""},
		{"passed plumbing", []filter.HTTPFilterConfig{{Name: "istio.metadata_exchange"}}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Registry().BuildHTTP(tc.filters, noRouter)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(namesOf(c), ",") != strings.Join(tc.want, ",") {
				t.Errorf("chain %v, want %v", namesOf(c), tc.want)
			}
		})
	}
}

func namesOf(c *filter.Chain) []string {
	if c == nil {
		return nil
	}
	return c.Names
}

func TestPerRoute(t *testing.T) {
	faultAny, _ := anypb.New(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}}})
	m, err := Registry().PerRoute(map[string]*anypb.Any{"envoy.filters.http.fault": faultAny})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := m["envoy.filters.http.fault"].(*fault.Config); c == nil || c.AbortStatus != 503 {
		t.Errorf("per-route fault = %#v", m)
	}
	_, err = Registry().PerRoute(map[string]*anypb.Any{"envoy.filters.http.lua": {TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute"}})
	if err == nil || !strings.Contains(err.Error(), "typed_per_filter_config[envoy.filters.http.lua]: type type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute: not supported") {
		t.Errorf("err = %v", err)
	}
}

// FuzzFilterConfig feeds arbitrary bytes as the typed config of every
// built-in filter (listener level and per route): parsing must return an
// error or a filter, never panic.
func FuzzFilterConfig(f *testing.F) {
	seed, _ := anypb.New(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}}})
	f.Add(uint8(0), seed.Value)
	f.Add(uint8(1), []byte{0x0a, 0x03, 0x0a, 0x01, 0x2a})
	f.Add(uint8(2), []byte{})
	types := Registry().TypeURLs()
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		typeURL := types[int(which)%len(types)]
		reg := Registry()
		reg.BuildHTTP([]filter.HTTPFilterConfig{hf("f", any(t, typeURL, b))}, noRouter)
		reg.PerRoute(map[string]*anypb.Any{"f": any(t, typeURL, b)})
		reg.BuildNetwork("f", 0, any(t, typeURL, b))
	})
}
