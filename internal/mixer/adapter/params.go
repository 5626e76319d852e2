package adapter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/template"
)

// Decode decodes a handler's params into out (a struct with camelCase json
// tags). Keys may be written in snake_case too, as Istio's jsonpb
// accepted; keys under the object fields named in freeMaps (dimensions,
// labels, ...) are the user's own and are kept as written. Unknown fields
// are errors naming them.
func Decode(params *structpb.Struct, out any, freeMaps ...string) error {
	m := params.AsMap()
	norm := normalize(m, freeMaps).(map[string]any)
	b, err := json.Marshal(norm)
	if err != nil {
		return fmt.Errorf("params: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("params: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func normalize(v any, free []string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			ck := template.JSONName(k)
			isFree := false
			for _, f := range free {
				if ck == f {
					isFree = true
				}
			}
			if isFree {
				out[ck] = val
				continue
			}
			out[ck] = normalize(val, free)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e, free)
		}
		return out
	}
	return v
}

// Duration is a params duration: "1s", "500ms", or a number of seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var f float64
		if err2 := json.Unmarshal(b, &f); err2 != nil {
			return fmt.Errorf("want a duration such as \"1s\"")
		}
		*d = Duration(f * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %v", s, err)
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
