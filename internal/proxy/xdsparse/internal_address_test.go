package xdsparse

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestInternalAddressConfig(t *testing.T) {
	router, _ := anypb.New(&routerv3.Router{})
	build := func(ranges ...*corev3.CidrRange) *hcmv3.HttpConnectionManager {
		return &hcmv3.HttpConnectionManager{
			RouteSpecifier:        &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "r"}},
			HttpFilters:           []*hcmv3.HttpFilter{{Name: RouterFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
			InternalAddressConfig: &hcmv3.HttpConnectionManager_InternalAddressConfig{CidrRanges: ranges},
		}
	}
	m, err := parseHCM(build(
		&corev3.CidrRange{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(8)},
		&corev3.CidrRange{AddressPrefix: "127.0.0.1"}, // no length: the one address
		&corev3.CidrRange{AddressPrefix: "fd00::", PrefixLen: wrapperspb.UInt32(8)},
	))
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"10.1.2.3": true, "11.0.0.1": false, "127.0.0.1": true, "127.0.0.2": false,
		"fd12::1": true, "fe80::1": false, "::ffff:10.0.0.1": true, "garbage": false,
	} {
		if got := m.IsInternalAddress(ip); got != want {
			t.Errorf("IsInternalAddress(%s) = %v, want %v", ip, got, want)
		}
	}
	// Envoy's default since 1.33: nothing is internal.
	m, err = parseHCM(build())
	if err != nil || m.IsInternalAddress("10.0.0.1") || m.IsInternalAddress("127.0.0.1") {
		t.Errorf("without ranges: %v, internal %v", err, m.IsInternalAddress("10.0.0.1"))
	}
	for _, bad := range []*corev3.CidrRange{
		{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(33)},
		{AddressPrefix: "ten.0.0.0", PrefixLen: wrapperspb.UInt32(8)},
	} {
		_, err := parseHCM(build(bad))
		if err == nil || !strings.Contains(err.Error(), "internal_address_config.cidr_ranges[0]") {
			t.Errorf("%v: error %v, want one naming the field", bad, err)
		}
	}
}
