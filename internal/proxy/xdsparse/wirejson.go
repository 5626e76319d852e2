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
)

// ResourceJSON renders an encoded resource of the type typeURL names as
// protojson does (Envoy's config_dump shape), from the wire and wireDescs,
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

// findDesc returns the index of the message named name in wireDescs, -1
// when it is not there.
func findDesc(name string) int16 {
	for i := range wireDescs {
		if wireDescs[i].name == name {
			return int16(i)
		}
	}
	return -1
}

// jsonCamelCase is protobuf's default json_name (TestWireDescriptors
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

func (w *jsonWriter) str(s string) {
	b, _ := json.Marshal(s)
	w.buf = append(w.buf, b...)
}

// any renders a google.protobuf.Any, or a top-level resource as one.
func (w *jsonWriter) any(url string, di int16, b []byte, depth int) {
	w.buf = append(w.buf, `{"@type":`...)
	w.str(url)
	if wellKnownJSON(wireDescs[di].name) {
		w.buf = append(w.buf, `,"value":`...)
		w.message(di, b, depth+1)
		w.buf = append(w.buf, '}')
		return
	}
	w.fields(di, b, depth+1, true)
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

// message renders an encoded message of type wireDescs[di].
func (w *jsonWriter) message(di int16, b []byte, depth int) {
	if depth > maxJSONDepth {
		w.buf = append(w.buf, "null"...)
		return
	}
	d := &wireDescs[di]
	switch d.name {
	case "google.protobuf.Duration":
		m := decodeWire(di, b)
		w.str(durationJSON(int64(m.u64(durSeconds)), int32(m.u64(durNanos))))
		return
	case "google.protobuf.Any":
		m := decodeWire(di, b)
		url, value := m.str(anyTypeURL), m.msg(anyValue)
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
		w.str(url)
		if len(value) == 0 {
			// An empty message of any type: protojson writes only its
			// type (Istio's raw_buffer transport socket).
			w.buf = append(w.buf, '}')
			return
		}
		w.buf = append(w.buf, `,"value_base64":`...)
		w.str(base64.StdEncoding.EncodeToString(value))
		w.buf = append(w.buf, '}')
		return
	case "google.protobuf.Struct":
		m := decodeWire(di, b)
		w.mapField(m, &m.d.fields[0], m.run(0), depth)
		return
	case "google.protobuf.ListValue":
		m := decodeWire(di, b)
		w.list(&m.d.fields[0], m.run(0), depth)
		return
	case "google.protobuf.Value":
		m := decodeWire(di, b)
		if len(m.vals) == 0 {
			w.buf = append(w.buf, "null"...)
			return
		}
		// A oneof of singular fields: at most one value.
		v := &m.vals[0]
		if fd := &m.d.fields[v.i]; fd.kind == kEnum { // null_value
			w.buf = append(w.buf, "null"...)
		} else {
			w.single(fd, v, depth)
		}
		return
	}
	if wellKnownJSON(d.name) { // a wrapper: its value, the default when unset
		m := decodeWire(di, b)
		w.single(&m.d.fields[0], m.val(m.d.fields[0].num), depth)
		return
	}
	w.buf = append(w.buf, '{')
	w.fields(di, b, depth, false)
	w.buf = append(w.buf, '}')
}

// fields renders a message's set fields as members of an open object;
// after says whether a member was written before them.
func (w *jsonWriter) fields(di int16, b []byte, depth int, after bool) {
	m := decodeWire(di, b)
	for k := 0; k < len(m.vals); {
		run := m.run(int(m.vals[k].i))
		k += len(run)
		if !m.isSet(run) {
			continue
		}
		if after {
			w.buf = append(w.buf, ',')
		}
		after = true
		fd := &m.d.fields[run[0].i]
		w.str(jsonCamelCase(fd.name))
		w.buf = append(w.buf, ':')
		switch {
		case fd.flags&fMap != 0:
			w.mapField(m, fd, run, depth)
		case fd.flags&fList != 0:
			w.list(fd, run, depth)
		default:
			w.single(fd, &run[len(run)-1], depth)
		}
	}
}

// mapField renders map field fd of m (its entries run) as an object.
func (w *jsonWriter) mapField(m *wireMsg, fd *fieldDesc, run []wireVal, depth int) {
	w.buf = append(w.buf, '{')
	vd := &wireDescs[fd.msg].fields[1]
	keys, values := m.entriesOf(run)
	for j, k := range keys {
		if j > 0 {
			w.buf = append(w.buf, ',')
		}
		w.str(k)
		w.buf = append(w.buf, ':')
		if vd.kind == kMessage {
			w.message(vd.msg, values[j], depth+1)
			continue
		}
		// A scalar value: the last entry of the key has it.
		var last *wireVal
		for e := range run {
			if em := m.subOf(&run[e]); mapKeyString(em) == k {
				last = em.val(2)
			}
		}
		w.single(vd, last, depth)
	}
	w.buf = append(w.buf, '}')
}

// list renders repeated field fd (its values run) as an array.
func (w *jsonWriter) list(fd *fieldDesc, run []wireVal, depth int) {
	w.buf = append(w.buf, '[')
	for j := range run {
		if j > 0 {
			w.buf = append(w.buf, ',')
		}
		switch {
		case fd.kind.scalar():
			w.scalar(fd, run[j].n)
		case fd.kind == kMessage:
			w.message(fd.msg, run[j].b, depth+1)
		default:
			w.bytes(fd.kind, run[j].b)
		}
	}
	w.buf = append(w.buf, ']')
}

// single renders singular field fd (value v; its default when v is nil).
func (w *jsonWriter) single(fd *fieldDesc, v *wireVal, depth int) {
	if v == nil {
		v = &wireVal{}
	}
	switch {
	case fd.kind == kMessage:
		w.message(fd.msg, v.b, depth+1)
	case fd.kind == kString || fd.kind == kBytes:
		w.bytes(fd.kind, v.b)
	default:
		w.scalar(fd, v.n)
	}
}

func (w *jsonWriter) bytes(k wireKind, b []byte) {
	if k == kBytes {
		w.str(base64.StdEncoding.EncodeToString(b))
		return
	}
	w.str(string(b))
}

func (w *jsonWriter) scalar(fd *fieldDesc, n uint64) {
	switch fd.kind {
	case kBool:
		w.buf = strconv.AppendBool(w.buf, n != 0)
	case kEnum:
		for _, v := range wireEnums[fd.msg].values {
			if v.num == int32(n) {
				w.str(v.name)
				return
			}
		}
		w.buf = strconv.AppendInt(w.buf, int64(int32(n)), 10)
	case kInt32, kSfixed32:
		w.buf = strconv.AppendInt(w.buf, int64(int32(n)), 10)
	case kSint32:
		w.buf = strconv.AppendInt(w.buf, int64(int32(protowire.DecodeZigZag(n&math.MaxUint32))), 10)
	case kUint32, kFixed32:
		w.buf = strconv.AppendUint(w.buf, uint64(uint32(n)), 10)
	case kInt64, kSfixed64:
		w.str(strconv.FormatInt(int64(n), 10))
	case kSint64:
		w.str(strconv.FormatInt(protowire.DecodeZigZag(n), 10))
	case kUint64, kFixed64:
		w.str(strconv.FormatUint(n, 10))
	case kFloat:
		w.float(float64(math.Float32frombits(uint32(n))), 32)
	case kDouble:
		w.float(math.Float64frombits(n), 64)
	}
}

func (w *jsonWriter) float(f float64, bits int) {
	switch {
	case math.IsNaN(f):
		w.str("NaN")
	case math.IsInf(f, 1):
		w.str("Infinity")
	case math.IsInf(f, -1):
		w.str("-Infinity")
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
