package mixer

import (
	"encoding/base64"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
)

// FuzzDecodeForwarded: x-istio-attributes comes from the calling peer; any
// value decodes to source.* attributes or is refused, never a panic.
func FuzzDecodeForwarded(f *testing.F) {
	a := &mixerpb.Attributes{Attributes: map[string]*mixerpb.Attributes_AttributeValue{
		"source.uid":    {Value: &mixerpb.Attributes_AttributeValue_StringValue{StringValue: "kubernetes://reviews-v2.default"}},
		"source.labels": {Value: &mixerpb.Attributes_AttributeValue_StringMapValue{StringMapValue: &mixerpb.Attributes_StringMap{Entries: map[string]string{"app": "reviews"}}}},
		"request.path":  {Value: &mixerpb.Attributes_AttributeValue_StringValue{StringValue: "/not-a-source-attribute"}},
	}}
	b, _ := proto.Marshal(a)
	f.Add(base64.StdEncoding.EncodeToString(b))
	f.Add("!!!not base64")
	f.Add(base64.StdEncoding.EncodeToString([]byte{0x0a, 0x05, 0x0a, 0x01, 0x78, 0x12, 0x00}))
	f.Fuzz(func(t *testing.T, v string) {
		m, err := decodeForwarded(v)
		if err != nil {
			return
		}
		for k := range m {
			if len(k) < 7 || k[:7] != "source." {
				t.Fatalf("decodeForwarded kept %q from a peer", k)
			}
		}
	})
}
