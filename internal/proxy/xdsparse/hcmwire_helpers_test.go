package xdsparse

import (
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// parseHCM parses a generated connection manager the way mast-proxy
// receives it: encoded, through DecodeHTTPManager.
func parseHCM(h *hcmv3.HttpConnectionManager) (*HTTPManager, error) {
	b, err := proto.Marshal(h)
	if err != nil {
		return nil, err
	}
	return DecodeHTTPManager(b)
}

// parseAccessLogs parses generated access logs through the wire decoder.
func parseAccessLogs(t testing.TB, logs []*accesslogv3.AccessLog) ([]accesslog.Config, error) {
	t.Helper()
	di := findDesc("envoy.config.accesslog.v3.AccessLog")
	var ms []*pbwire.Msg
	for _, l := range logs {
		b, err := proto.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateWire(di, b); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, decodeWire(di, b))
	}
	return parseAccessLogsWire(ms)
}
