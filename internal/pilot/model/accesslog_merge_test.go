package model

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
	telemetry "istio.io/api/telemetry/v1alpha1"
)

// TestMergeAccessLogs follows istiod's mergeLogs cases (its
// TestAccessLogging): which providers are in force on one side of a proxy
// for the Telemetry levels that apply, least specific first. want nil is
// istiod's "fall back to MeshConfig's accessLogFile"; a provider marked
// "-" is in force but disabled.
func TestMergeAccessLogs(t *testing.T) {
	const (
		client = telemetry.WorkloadMode_CLIENT
		server = telemetry.WorkloadMode_SERVER
		both   = telemetry.WorkloadMode_CLIENT_AND_SERVER
		unset  = telemetry.WorkloadMode(-1)
	)
	entry := func(mode telemetry.WorkloadMode, disabled bool, filter string, providers ...string) *telemetry.AccessLogging {
		e := &telemetry.AccessLogging{}
		if mode != unset {
			e.Match = &telemetry.AccessLogging_LogSelector{Mode: mode}
		}
		if disabled {
			e.Disabled = wrapperspb.Bool(true)
		}
		if filter != "" {
			e.Filter = &telemetry.AccessLogging_Filter{Expression: filter}
		}
		for _, p := range providers {
			e.Providers = append(e.Providers, &telemetry.ProviderRef{Name: p})
		}
		return e
	}
	level := func(es ...*telemetry.AccessLogging) []*telemetry.AccessLogging { return es }
	envoy := level(entry(unset, false, "", "envoy"))
	clientOnly := level(entry(client, false, "", "envoy"))
	clientOff := level(entry(client, true, "", "envoy"))
	serverOnly := level(entry(server, false, "", "envoy"))
	serverOff := level(entry(server, true, "", "envoy"))
	for _, tc := range []struct {
		name     string
		levels   [][]*telemetry.AccessLogging
		defaults []string
		mode     telemetry.WorkloadMode
		want     []string
	}{
		{"empty", nil, nil, client, nil},
		{"default provider only", nil, []string{"envoy"}, client, []string{"envoy"}},
		{"provider only", [][]*telemetry.AccessLogging{envoy}, nil, client, []string{"envoy"}},
		{"client - outbound", [][]*telemetry.AccessLogging{clientOnly}, nil, client, []string{"envoy"}},
		{"client - inbound", [][]*telemetry.AccessLogging{clientOnly}, nil, server, nil},
		{"client - disabled server", [][]*telemetry.AccessLogging{clientOnly, serverOff}, nil, client, []string{"envoy"}},
		{"client - disabled client", [][]*telemetry.AccessLogging{clientOnly, clientOff}, nil, client, []string{"-envoy"}},
		{"client - disabled - enabled", [][]*telemetry.AccessLogging{clientOnly, clientOff, clientOnly}, nil, client, []string{"envoy"}},
		{"server - inbound", [][]*telemetry.AccessLogging{serverOnly}, nil, server, []string{"envoy"}},
		{"server - outbound", [][]*telemetry.AccessLogging{serverOnly}, nil, client, nil},
		{"server and client", [][]*telemetry.AccessLogging{level(entry(both, false, "", "envoy"))}, nil, server, []string{"envoy"}},
		{"override default", [][]*telemetry.AccessLogging{envoy}, []string{"stackdriver"}, client, []string{"envoy"}},
		{"override namespace", [][]*telemetry.AccessLogging{envoy, level(entry(unset, false, "", "envoy-json"))}, nil, client, []string{"envoy-json"}},
		{"empty config inherits", [][]*telemetry.AccessLogging{envoy, level(entry(unset, false, ""))}, nil, client, []string{"envoy"}},
		{"disable config", [][]*telemetry.AccessLogging{envoy, level(entry(unset, true, ""))}, nil, client, []string{"-envoy"}},
		{"disable default", [][]*telemetry.AccessLogging{level(entry(unset, true, ""))}, []string{"envoy"}, client, []string{"-envoy"}},
		{"multi filters", [][]*telemetry.AccessLogging{level(entry(server, false, "", "envoy"), entry(both, false, "", "envoy"))}, nil, client, []string{"envoy"}},
		{"multi filters disabled", [][]*telemetry.AccessLogging{level(entry(server, false, "", "envoy"), entry(both, true, "", "envoy"))}, nil, client, []string{"-envoy"}},
		{"multi accesslogging", [][]*telemetry.AccessLogging{envoy, level(entry(unset, false, "", "envoy"), entry(unset, false, "", "envoy-json"))}, nil, client, []string{"envoy", "envoy-json"}},
		{"multi accesslogging with disabled", [][]*telemetry.AccessLogging{envoy, level(entry(unset, false, "", "envoy"), entry(unset, true, "", "envoy-json"))}, nil, client, []string{"envoy", "-envoy-json"}},
		{"server and client different - inbound", [][]*telemetry.AccessLogging{level(entry(server, false, "", "envoy"), entry(client, false, "", "envoy-json"))}, nil, server, []string{"envoy"}},
		{"server and client different - outbound", [][]*telemetry.AccessLogging{level(entry(server, false, "", "envoy"), entry(client, false, "", "envoy-json"))}, nil, client, []string{"envoy-json"}},
		{"filter per provider", [][]*telemetry.AccessLogging{level(entry(unset, false, "response.code >= 400", "envoy"), entry(unset, false, "", "envoy-json"))}, nil, client, []string{"envoy[response.code >= 400]", "envoy-json"}},
		{"disabled without any provider turns the side off (istiod: MeshConfig's file)", [][]*telemetry.AccessLogging{level(entry(unset, true, ""))}, nil, client, []string{"-"}},
		{"client side off without providers leaves the server side", [][]*telemetry.AccessLogging{level(entry(client, true, ""))}, nil, server, nil},
		{"disabled without providers, then enabled", [][]*telemetry.AccessLogging{level(entry(unset, true, "")), envoy}, nil, client, []string{"envoy"}},
		{"a filter without providers is ignored (IST0157)", [][]*telemetry.AccessLogging{level(entry(unset, false, "response.code >= 400"))}, nil, client, nil},
		{"a later level's entry without filter clears it", [][]*telemetry.AccessLogging{level(entry(unset, false, "response.code >= 400", "envoy")), envoy}, nil, client, []string{"envoy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, lp := range mergeAccessLogs(tc.levels, tc.defaults, tc.mode) {
				s := lp.Name
				if lp.Disabled {
					s = "-" + s
				}
				if lp.Filter != "" {
					s += fmt.Sprintf("[%s]", lp.Filter)
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
