package xdsparse

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// ResourceJSON renders an encoded resource of the type typeURL names as
// protojson does (Envoy's config_dump shape), from the wire and wireTable,
// so that /config_dump needs no generated types. ok is false when the type
// is not in the table. An Any whose type is not in the table is rendered
// with protojson when this binary links it (filter configurations), else
// as {"@type": url, "value_base64": …} (as {"@type": url} when empty, which
// is protojson's rendering of an empty message); the resource's bytes were validated
// when the proxy accepted them, an Any's contents are rendered best effort.
func ResourceJSON(typeURL string, b []byte) (out []byte, ok bool) {
	di := findDesc(typeURL[strings.LastIndexByte(typeURL, '/')+1:])
	if di < 0 {
		return nil, false
	}
	w := jsonWriter{}
	w.any(typeURL, di, b, 0)
	return w.buf, true
}

// findDesc returns the index of the message named name in wireTable, -1
// when it is not there.
func findDesc(name string) int {
	if i := wireTable.Index(name); i >= 0 && !wireTable[i].Enum {
		return i
	}
	return -1
}

// jsonCamelCase is protobuf's default json_name (TestWireTable
// checks that every field of the table has it).
func jsonCamelCase(s string) string {
	var b strings.Builder
	up := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			up = true
			continue
		}
		if up && c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		up = false
		b.WriteByte(c)
	}
	return b.String()
}

// maxJSONDepth bounds the nesting rendered (an Any's contents are not
// validated, so their depth is not bounded by the decoder).
const maxJSONDepth = 100

type jsonWriter struct{ buf []byte }

func (w *jsonWriter) quote(s string) {
	b, _ := json.Marshal(s)
	w.buf = append(w.buf, b...)
}

// any renders a google.protobuf.Any, or a top-level resource as one.
func (w *jsonWriter) any(url string, di int, b []byte, depth int) {
	w.buf = append(w.buf, `{"@type":`...)
	w.quote(url)
	if wellKnownJSON(wireTable[di].Name) {
		w.buf = append(w.buf, `,"value":`...)
		w.message(di, b, depth+1)
		w.buf = append(w.buf, '}')
		return
	}
	w.fields(decodeWire(di, b), depth+1, true)
	w.buf = append(w.buf, '}')
}

// wellKnownJSON reports whether protojson renders the type as a value
// rather than an object of its fields.
func wellKnownJSON(name string) bool {
	switch name {
	case "google.protobuf.Duration", "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
		"google.protobuf.Timestamp", "google.protobuf.FieldMask", "google.protobuf.Empty":
		return name != "google.protobuf.Empty"
	}
	return strings.HasPrefix(name, "google.protobuf.") && strings.HasSuffix(name, "Value")
}

// message renders an encoded message of type wireTable[di].
func (w *jsonWriter) message(di int, b []byte, depth int) {
	if depth > maxJSONDepth {
		w.buf = append(w.buf, "null"...)
		return
	}
	d := &wireTable[di]
	switch d.Name {
	case "google.protobuf.Duration":
		m := decodeWire(di, b)
		w.quote(durationJSON(m.I64(durSeconds), m.I32(durNanos)))
		return
	case "google.protobuf.Any":
		m := decodeWire(di, b)
		url, value := m.Str(anyTypeURL), m.Bytes(anyValue)
		if adi := findDesc(url[strings.LastIndexByte(url, '/')+1:]); adi >= 0 {
			w.any(url, adi, value, depth)
			return
		}
		// A type outside the table that this binary links (an HTTP
		// filter's per-route config): protojson renders it, as before.
		if j, err := protojson.Marshal(&anypb.Any{TypeUrl: url, Value: value}); err == nil {
			w.buf = append(w.buf, j...)
			return
		}
		w.buf = append(w.buf, `{"@type":`...)
		w.quote(url)
		if len(value) == 0 {
			// An empty message of any type: protojson writes only its
			// type (Istio's raw_buffer transport socket).
			w.buf = append(w.buf, '}')
			return
		}
		w.buf = append(w.buf, `,"value_base64":`...)
		w.quote(base64.StdEncoding.EncodeToString(value))
		w.buf = append(w.buf, '}')
		return
	case "google.protobuf.Struct":
		m := decodeWire(di, b)
		w.mapField(m, &d.Fields[0], m.Vals(d.Fields[0].Num), depth)
		return
	case "google.protobuf.ListValue":
		m := decodeWire(di, b)
		w.list(m, &d.Fields[0], m.Vals(d.Fields[0].Num), depth)
		return
	case "google.protobuf.Value":
		m := decodeWire(di, b)
		// A oneof of singular fields: at most one value.
		for fd, vs := range m.All {
			if fd.Scalar == pbwire.ScalarEnum { // null_value
				w.buf = append(w.buf, "null"...)
			} else {
				w.single(m, fd, &vs[0], depth)
			}
			return
		}
		w.buf = append(w.buf, "null"...)
		return
	}
	if wellKnownJSON(d.Name) { // a wrapper: its value, the default when unset
		m := decodeWire(di, b)
		var v *pbwire.Val
		if vs := m.Vals(d.Fields[0].Num); len(vs) > 0 {
			v = &vs[len(vs)-1]
		}
		w.single(m, &d.Fields[0], v, depth)
		return
	}
	w.buf = append(w.buf, '{')
	w.fields(decodeWire(di, b), depth, false)
	w.buf = append(w.buf, '}')
}

// fields renders a message's set fields as members of an open object;
// after says whether a member was written before them.
func (w *jsonWriter) fields(m *pbwire.Msg, depth int, after bool) {
	for fd, run := range m.All {
		if !pbwire.IsSet(fd, run) {
			continue
		}
		if after {
			w.buf = append(w.buf, ',')
		}
		after = true
		w.quote(jsonCamelCase(fd.Name))
		w.buf = append(w.buf, ':')
		switch {
		case fd.Map:
			w.mapField(m, fd, run, depth)
		case fd.List:
			w.list(m, fd, run, depth)
		default:
			w.single(m, fd, &run[len(run)-1], depth)
		}
	}
}

// mapField renders map field fd of m (its entries run) as an object.
func (w *jsonWriter) mapField(m *pbwire.Msg, fd *pbwire.Field, run []pbwire.Val, depth int) {
	w.buf = append(w.buf, '{')
	vd := &wireTable[fd.Msg].Fields[1]
	keys, entries := m.MapEntries(run)
	for j, k := range keys {
		if j > 0 {
			w.buf = append(w.buf, ',')
		}
		w.quote(k)
		w.buf = append(w.buf, ':')
		// The key's last entry has its value.
		var v *pbwire.Val
		if vs := entries[j].Vals(mapValue); len(vs) > 0 {
			v = &vs[len(vs)-1]
		}
		w.single(entries[j], vd, v, depth)
	}
	w.buf = append(w.buf, '}')
}

// list renders repeated field fd of m (its values run) as an array.
func (w *jsonWriter) list(m *pbwire.Msg, fd *pbwire.Field, run []pbwire.Val, depth int) {
	w.buf = append(w.buf, '[')
	for j := range run {
		if j > 0 {
			w.buf = append(w.buf, ',')
		}
		switch {
		case fd.Kind.Scalar():
			w.scalar(fd, run[j].N)
		case fd.Kind == pbwire.Message:
			w.message(int(fd.Msg), run[j].B, depth+1)
		default:
			w.bytes(fd.Kind, run[j].B)
		}
	}
	w.buf = append(w.buf, ']')
}

// single renders singular field fd of m (value v; its default when v is
// nil).
func (w *jsonWriter) single(m *pbwire.Msg, fd *pbwire.Field, v *pbwire.Val, depth int) {
	if v == nil {
		v = &pbwire.Val{}
	}
	switch {
	case fd.Kind == pbwire.Message:
		w.message(int(fd.Msg), v.B, depth+1)
	case fd.Kind == pbwire.String || fd.Kind == pbwire.Bytes:
		w.bytes(fd.Kind, v.B)
	default:
		w.scalar(fd, v.N)
	}
}

func (w *jsonWriter) bytes(k pbwire.Kind, b []byte) {
	if k == pbwire.Bytes {
		w.quote(base64.StdEncoding.EncodeToString(b))
		return
	}
	w.quote(string(b))
}

func (w *jsonWriter) scalar(fd *pbwire.Field, n uint64) {
	switch fd.Scalar {
	case pbwire.ScalarBool:
		w.buf = strconv.AppendBool(w.buf, n != 0)
	case pbwire.ScalarEnum:
		if name := wireTable.EnumName(fd.Msg, int32(n)); name != "" {
			w.quote(name)
			return
		}
		w.buf = strconv.AppendInt(w.buf, int64(int32(n)), 10)
	case pbwire.ScalarInt32, pbwire.ScalarSfixed32:
		w.buf = strconv.AppendInt(w.buf, int64(int32(n)), 10)
	case pbwire.ScalarSint32:
		w.buf = strconv.AppendInt(w.buf, int64(int32(protowire.DecodeZigZag(n&math.MaxUint32))), 10)
	case pbwire.ScalarUint32, pbwire.ScalarFixed32:
		w.buf = strconv.AppendUint(w.buf, uint64(uint32(n)), 10)
	case pbwire.ScalarInt64, pbwire.ScalarSfixed64:
		w.quote(strconv.FormatInt(int64(n), 10))
	case pbwire.ScalarSint64:
		w.quote(strconv.FormatInt(protowire.DecodeZigZag(n), 10))
	case pbwire.ScalarUint64, pbwire.ScalarFixed64:
		w.quote(strconv.FormatUint(n, 10))
	case pbwire.ScalarFloat:
		w.float(float64(math.Float32frombits(uint32(n))), 32)
	case pbwire.ScalarDouble:
		w.float(math.Float64frombits(n), 64)
	}
}

func (w *jsonWriter) float(f float64, bits int) {
	switch {
	case math.IsNaN(f):
		w.quote("NaN")
	case math.IsInf(f, 1):
		w.quote("Infinity")
	case math.IsInf(f, -1):
		w.quote("-Infinity")
	default:
		w.buf = strconv.AppendFloat(w.buf, f, 'g', -1, bits)
	}
}

// durationJSON formats a Duration as protojson does: seconds with 0, 3, 6
// or 9 decimals.
func durationJSON(secs int64, nanos int32) string {
	sign := ""
	if secs < 0 || nanos < 0 {
		sign, secs, nanos = "-", -secs, -nanos
	}
	x := fmt.Sprintf("%s%d.%09d", sign, secs, nanos)
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, "000")
	x = strings.TrimSuffix(x, ".000")
	return x + "s"
}
