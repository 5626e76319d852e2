package attribute

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
)

// FuzzDecode: compressed attributes arrive from proxies in every Check and
// Report; any message decodes to a bag or an error, never a panic, whatever
// global_word_count it claims.
func FuzzDecode(f *testing.F) {
	d := GlobalDictionary()
	enc := NewEncoder(d)
	seed := enc.Encode(MapBag{"source.uid": "kubernetes://a.default", "request.headers": map[string]string{"x-user": "john"},
		"response.code": int64(200), "own.word": "v"})
	b, _ := proto.Marshal(seed)
	f.Add(b, int32(d.Len()))
	f.Add([]byte{0x0a, 0x01, 0x78, 0x12, 0x04, 0x08, 0x7f, 0x10, 0x00}, int32(0))
	f.Fuzz(func(t *testing.T, msg []byte, words int32) {
		var ca mixerpb.CompressedAttributes
		if proto.Unmarshal(msg, &ca) != nil {
			return
		}
		Decode(&ca, d, int(words))
	})
}
