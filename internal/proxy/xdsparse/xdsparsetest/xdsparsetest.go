// Package xdsparsetest lets tests outside xdsparse parse resources built
// with go-control-plane's generated types the way mast-proxy receives
// them: encoded, through the wire decoder (mast-proxy links none of these
// types, so xdsparse's own API takes bytes).
package xdsparsetest

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// ParseListener encodes l and decodes it with xdsparse.DecodeListener.
func ParseListener(l *listenerv3.Listener) (*xdsparse.Listener, error) {
	b, err := proto.Marshal(l)
	if err != nil {
		return nil, err
	}
	_, out, err := xdsparse.DecodeListener(b)
	return out, err
}

// ParseHTTPManager encodes h and decodes it with xdsparse.DecodeHTTPManager.
func ParseHTTPManager(h *hcmv3.HttpConnectionManager) (*xdsparse.HTTPManager, error) {
	b, err := proto.Marshal(h)
	if err != nil {
		return nil, err
	}
	return xdsparse.DecodeHTTPManager(b)
}
