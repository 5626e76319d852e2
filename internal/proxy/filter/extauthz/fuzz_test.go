package extauthz

import (
	"strings"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// FuzzParseConfig: any ExtAuthz the control plane sends either parses into
// a Config with exactly one service and a positive timeout, or is refused.
func FuzzParseConfig(f *testing.F) {
	for _, c := range []*extauthzv3.ExtAuthz{httpConfig(), grpcConfig(), {}} {
		b, _ := proto.Marshal(c)
		f.Add(b)
	}
	withBody := grpcConfig()
	withBody.WithRequestBody = &extauthzv3.BufferSettings{MaxRequestBytes: 10, AllowPartialMessage: true}
	b, _ := proto.Marshal(withBody)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var c extauthzv3.ExtAuthz
		if proto.Unmarshal(data, &c) != nil {
			return
		}
		cfg, err := ParseProto(&c)
		if err != nil {
			return
		}
		if (cfg.GRPC == nil) == (cfg.HTTP == nil) || cfg.Timeout <= 0 || cfg.StatusOnError < 100 {
			t.Fatalf("accepted an unusable config: %+v", cfg)
		}
		if cfg.Body != nil && cfg.Body.MaxBytes <= 0 {
			t.Fatalf("with_request_body of %d bytes", cfg.Body.MaxBytes)
		}
		NewFromConfig("x", cfg)
	})
}

// FuzzDecodeHTTPResponse: an HTTP authorizer's answer never produces
// headers that are invalid on the wire, framing headers for the client,
// or an allow from anything but 200.
func FuzzDecodeHTTPResponse(f *testing.F) {
	f.Add(200, "x-ext-authz-check-result: allowed\nx-envoy-auth-headers-to-remove: a, b", []byte(""))
	f.Add(403, "x-ext-authz-check-result: denied\ncontent-length: 5\nwww-authenticate: Bearer", []byte("denied"))
	f.Add(503, "", []byte("down"))
	f.Add(302, "location: /login\nset-cookie: a=b", []byte(""))
	f.Add(200, "x-ext-authz-check-result: a\r\nb\nHost: evil", []byte(""))
	cfg, err := ParseProto(httpConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status int, head string, body []byte) {
		var h headers.List
		for _, line := range strings.Split(head, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				h = append(h, headers.Field{Name: k, Value: strings.TrimSpace(v)})
			}
		}
		out := decodeHTTPResponse(cfg.HTTP, status, h, body)
		if out.kind == kindOK && status != 200 || status >= 500 && out.kind != kindError {
			t.Fatalf("status %d decoded as kind %d", status, out.kind)
		}
		for _, x := range out.client {
			if !headers.ValidName(x.Name) || !headers.ValidValue(x.Value) {
				t.Fatalf("invalid client header %q: %q", x.Name, x.Value)
			}
			switch x.Name {
			case "content-length", "transfer-encoding", "connection", "host":
				t.Fatalf("framing header %q passed to the client", x.Name)
			}
		}
		for _, m := range out.mut {
			if !headers.ValidName(m.name) || !headers.ValidValue(m.value) || m.name == "host" {
				t.Fatalf("invalid upstream header %q: %q", m.name, m.value)
			}
		}
	})
}
