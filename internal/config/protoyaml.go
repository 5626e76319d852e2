package config

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// decoder walks YAML nodes against protobuf descriptors, filling a message
// the way protojson would from the equivalent JSON (JSON or proto field
// names, enums by name, well-known types in their JSON forms, durations also
// in Go form such as "1m30s"), and records a Problem for anything it cannot
// use, with the field path and line.
type decoder struct {
	file     string
	lineOff  int // added to node lines: the document's offset in the file
	res      Key // the resource being decoded, for problems
	probs    Problems
	pos      *Positions
	path     []byte // current field path
	budget   *int   // nodes left to visit, shared by the decoders of one document
	sizeHint int    // bytes in the document, to size the position table
}

func (d *decoder) line(n *yaml.Node) int { return n.Line + d.lineOff }

func (d *decoder) fail(n *yaml.Node, format string, args ...any) {
	if *d.budget < 0 {
		return // the document was abandoned as too large
	}
	d.probs = append(d.probs, Problem{
		Severity: Error,
		Source:   Source{File: d.file, Line: d.line(n)},
		Resource: d.res,
		Field:    string(d.path),
		Message:  fmt.Sprintf(format, args...),
	})
}

func (d *decoder) pushField(name string) int {
	mark := len(d.path)
	if mark > 0 {
		d.path = append(d.path, '.')
	}
	d.path = append(d.path, name...)
	return mark
}

func (d *decoder) pushIndex(i int) int {
	mark := len(d.path)
	d.path = append(d.path, '[')
	d.path = strconv.AppendInt(d.path, int64(i), 10)
	d.path = append(d.path, ']')
	return mark
}

func (d *decoder) pushKey(k string) int {
	mark := len(d.path)
	d.path = append(d.path, '[')
	d.path = append(d.path, mapKeySegment(k)...)
	d.path = append(d.path, ']')
	return mark
}

func (d *decoder) pop(mark int) { d.path = d.path[:mark] }

// deref follows aliases and charges the node budget; once the budget is
// exhausted (one problem is recorded) it returns null nodes, which end the walk.
func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	if *d.budget <= 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}
	}
	*d.budget--
	if *d.budget == 0 {
		d.fail(n, "%v", errBudget)
		*d.budget = -1 // stop walking, and report nothing more
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// forEachPair calls fn for each key and value of mapping n, expanding YAML
// merge keys ("<<: *anchor").
func (d *decoder) forEachPair(n *yaml.Node, fn func(k, v *yaml.Node)) { d.pairs(n, fn, 0) }

// maxMergeDepth bounds nested (or recursive) merge keys.
const maxMergeDepth = 16

func (d *decoder) pairs(n *yaml.Node, fn func(k, v *yaml.Node), depth int) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if *d.budget <= 0 {
			return
		}
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			if depth >= maxMergeDepth {
				d.fail(k, "merge keys (<<) nested too deeply or recursive")
				continue
			}
			v = d.deref(v)
			switch v.Kind {
			case yaml.MappingNode:
				d.pairs(v, fn, depth+1)
			case yaml.SequenceNode:
				for _, m := range v.Content {
					if m = d.deref(m); m.Kind == yaml.MappingNode {
						d.pairs(m, fn, depth+1)
					}
				}
			default:
				d.fail(v, "merge key (<<) wants an object or a list of objects, got %s", describe(v))
			}
			continue
		}
		if k = d.deref(k); k.Kind != yaml.ScalarNode {
			d.fail(k, "field names must be strings, got %s", describe(k))
			continue
		}
		fn(k, v)
	}
}

// message fills m from node n. parent is the Positions entry of the field
// holding the message.
func (d *decoder) message(n *yaml.Node, m protoreflect.Message, parent int32) {
	n = d.deref(n)
	md := m.Descriptor()
	if d.wellKnown(n, m) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, "want an object (%s), got %s", md.Name(), describe(n))
		return
	}
	fields := md.Fields()
	var seen [8]protoreflect.FieldNumber
	seenList := seen[:0]
	d.forEachPair(n, func(k, v *yaml.Node) {
		name := k.Value
		mark := d.pushField(name)
		defer d.pop(mark)
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(name))
		}
		if fd == nil {
			d.fail(k, "unknown field %q%s", name, suggestField(name, md))
			return
		}
		for _, s := range seenList {
			if s == fd.Number() {
				d.fail(k, "duplicate field %q", name)
				return
			}
		}
		seenList = append(seenList, fd.Number())
		v = d.deref(v)
		idx := d.pos.add(parent, d.line(k), fd.JSONName(), -1, false)
		if isNull(v) && (fd.Message() == nil || fd.IsList() || fd.IsMap() || fd.Message().FullName() != "google.protobuf.Value") {
			return // null means unset, as in protojson
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other := m.WhichOneof(od); other != nil {
				d.fail(k, "only one of %s may be set; %q is already set", oneofNames(od), other.JSONName())
				return
			}
		}
		d.field(v, m, fd, idx)
	})
	for _, fd := range requiredFields[md.FullName()] {
		set := false
		for _, s := range seenList {
			set = set || s == fd.Number()
		}
		if !set {
			mark := d.pushField(fd.JSONName())
			d.fail(n, "missing required field %q", fd.JSONName())
			d.pop(mark)
		} else if !m.Has(fd) && (fd.IsList() || fd.Kind() == protoreflect.MessageKind) {
			mark := d.pushField(fd.JSONName())
			d.fail(n, "required field %q must not be empty", fd.JSONName())
			d.pop(mark)
		}
	}
}

func oneofNames(od protoreflect.OneofDescriptor) string {
	names := make([]string, od.Fields().Len())
	for i := range names {
		names[i] = strconv.Quote(od.Fields().Get(i).JSONName())
	}
	return strings.Join(names, ", ")
}

func (d *decoder) field(v *yaml.Node, m protoreflect.Message, fd protoreflect.FieldDescriptor, idx int32) {
	switch {
	case fd.IsList():
		if v.Kind != yaml.SequenceNode {
			d.fail(v, "want a list, got %s", describe(v))
			return
		}
		l := m.Mutable(fd).List()
		for i, item := range v.Content {
			if *d.budget <= 0 {
				return
			}
			mark := d.pushIndex(i)
			item = d.deref(item)
			eidx := d.pos.add(idx, d.line(item), "", i, false)
			switch {
			case isNull(item):
				d.fail(item, "list elements must not be null")
			case fd.Kind() == protoreflect.MessageKind:
				e := l.NewElement()
				d.message(item, e.Message(), eidx)
				l.Append(e)
			default:
				if val, ok := d.scalar(item, fd); ok {
					l.Append(val)
				}
			}
			d.pop(mark)
		}
	case fd.IsMap():
		if v.Kind != yaml.MappingNode {
			d.fail(v, "want an object, got %s", describe(v))
			return
		}
		mp := m.Mutable(fd).Map()
		kd, vd := fd.MapKey(), fd.MapValue()
		d.forEachPair(v, func(k, val *yaml.Node) {
			mark := d.pushKey(k.Value)
			defer d.pop(mark)
			key, ok := d.mapKey(k, kd)
			if !ok {
				return
			}
			if mp.Has(key) {
				d.fail(k, "duplicate key %q", k.Value)
				return
			}
			eidx := d.pos.add(idx, d.line(k), k.Value, -1, true)
			val = d.deref(val)
			if isNull(val) {
				d.fail(val, "value must not be null")
				return
			}
			if vd.Kind() == protoreflect.MessageKind {
				nv := mp.NewValue()
				d.message(val, nv.Message(), eidx)
				mp.Set(key, nv)
			} else if sv, ok := d.scalar(val, vd); ok {
				mp.Set(key, sv)
			}
		})
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		d.message(v, m.Mutable(fd).Message(), idx)
	default:
		if val, ok := d.scalar(v, fd); ok {
			m.Set(fd, val)
		}
	}
}

func (d *decoder) mapKey(k *yaml.Node, kd protoreflect.FieldDescriptor) (protoreflect.MapKey, bool) {
	s := k.Value
	switch kd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s).MapKey(), true
	case protoreflect.BoolKind:
		switch s {
		case "true":
			return protoreflect.ValueOfBool(true).MapKey(), true
		case "false":
			return protoreflect.ValueOfBool(false).MapKey(), true
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if i, err := strconv.ParseInt(s, 10, 32); err == nil {
			return protoreflect.ValueOfInt32(int32(i)).MapKey(), true
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return protoreflect.ValueOfInt64(i).MapKey(), true
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if i, err := strconv.ParseUint(s, 10, 32); err == nil {
			return protoreflect.ValueOfUint32(uint32(i)).MapKey(), true
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if i, err := strconv.ParseUint(s, 10, 64); err == nil {
			return protoreflect.ValueOfUint64(i).MapKey(), true
		}
	}
	d.fail(k, "invalid key %q: want %s", s, kindName(kd))
	return protoreflect.MapKey{}, false
}

// kindName describes the expected type of a field for error messages.
func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "a boolean"
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BytesKind:
		return "a base64 string"
	case protoreflect.EnumKind:
		return "one of " + enumNames(fd.Enum())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "a non-negative integer"
	case protoreflect.MessageKind:
		return "an object"
	}
	return "an integer"
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	vals := ed.Values()
	names := make([]string, vals.Len())
	for i := range names {
		names[i] = string(vals.Get(i).Name())
	}
	return strings.Join(names, ", ")
}

// scalar converts a scalar node to a value of fd's kind.
func (d *decoder) scalar(n *yaml.Node, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	bad := func() (protoreflect.Value, bool) {
		d.fail(n, "want %s, got %s", kindName(fd), describe(n))
		return protoreflect.Value{}, false
	}
	if n.Kind != yaml.ScalarNode {
		return bad()
	}
	tag, s := n.ShortTag(), n.Value
	switch fd.Kind() {
	case protoreflect.BoolKind:
		if tag != "!!bool" {
			return bad()
		}
		return protoreflect.ValueOfBool(strings.EqualFold(s, "true")), true
	case protoreflect.StringKind:
		if tag != "!!str" && tag != "!!timestamp" {
			return bad()
		}
		return protoreflect.ValueOfString(s), true
	case protoreflect.BytesKind:
		if tag != "!!str" && tag != "!!binary" {
			return bad()
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				return protoreflect.ValueOfBytes(b), true
			}
		}
		return bad()
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if tag == "!!str" {
			if ev := ed.Values().ByName(protoreflect.Name(s)); ev != nil {
				return protoreflect.ValueOfEnum(ev.Number()), true
			}
			d.fail(n, "unknown value %q; want one of %s", s, enumNames(ed))
			return protoreflect.Value{}, false
		}
		if tag == "!!int" {
			if i, err := strconv.ParseInt(s, 0, 32); err == nil && ed.Values().ByNumber(protoreflect.EnumNumber(i)) != nil {
				return protoreflect.ValueOfEnum(protoreflect.EnumNumber(i)), true
			}
		}
		return bad()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f, ok := parseFloat(tag, s)
		if !ok {
			return bad()
		}
		if fd.Kind() == protoreflect.FloatKind {
			if !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
				d.fail(n, "value %s out of range for a float", s)
				return protoreflect.Value{}, false
			}
			return protoreflect.ValueOfFloat32(float32(f)), true
		}
		return protoreflect.ValueOfFloat64(f), true
	}
	// Integers. 64-bit integers may be quoted, as in protojson.
	bits := 32
	switch fd.Kind() {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		bits = 64
	}
	switch {
	case tag == "!!int":
	case tag == "!!str" && bits == 64:
	case tag == "!!float":
		f, ok := parseFloat(tag, s)
		if !ok || f != math.Trunc(f) || math.IsInf(f, 0) {
			return bad()
		}
		s = strconv.FormatFloat(f, 'f', -1, 64)
	default:
		return bad()
	}
	unsigned := false
	switch fd.Kind() {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		unsigned = true
	}
	if unsigned {
		u, err := strconv.ParseUint(s, 0, bits)
		if err != nil {
			if strings.HasPrefix(s, "-") {
				d.fail(n, "value %s must not be negative", s)
			} else {
				d.fail(n, "value %s is not a valid uint%d", s, bits)
			}
			return protoreflect.Value{}, false
		}
		if bits == 32 {
			return protoreflect.ValueOfUint32(uint32(u)), true
		}
		return protoreflect.ValueOfUint64(u), true
	}
	i, err := strconv.ParseInt(s, 0, bits)
	if err != nil {
		d.fail(n, "value %s is not a valid int%d", s, bits)
		return protoreflect.Value{}, false
	}
	if bits == 32 {
		return protoreflect.ValueOfInt32(int32(i)), true
	}
	return protoreflect.ValueOfInt64(i), true
}

func parseFloat(tag, s string) (float64, bool) {
	switch tag {
	case "!!int":
		i, err := strconv.ParseInt(s, 0, 64)
		return float64(i), err == nil
	case "!!float":
		switch strings.ToLower(s) {
		case ".inf", "+.inf":
			return math.Inf(1), true
		case "-.inf":
			return math.Inf(-1), true
		case ".nan":
			return math.NaN(), true
		}
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil
	case "!!str": // protojson's special values
		switch s {
		case "NaN":
			return math.NaN(), true
		case "Infinity":
			return math.Inf(1), true
		case "-Infinity":
			return math.Inf(-1), true
		}
	}
	return 0, false
}

// wellKnown decodes the well-known types from their JSON forms. It reports
// whether m was one of them.
func (d *decoder) wellKnown(n *yaml.Node, m protoreflect.Message) bool {
	md := m.Descriptor()
	if md.ParentFile().Package() != "google.protobuf" {
		return false
	}
	switch md.Name() {
	case "Duration":
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.fail(n, "want a duration such as \"5s\" or \"100ms\", got %s", describe(n))
			return true
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.fail(n, "invalid duration %q: want a number with a unit such as \"5s\", \"100ms\" or \"1m30s\"", n.Value)
			return true
		}
		m.Set(md.Fields().ByNumber(1), protoreflect.ValueOfInt64(int64(dur/time.Second)))
		m.Set(md.Fields().ByNumber(2), protoreflect.ValueOfInt32(int32(dur%time.Second)))
	case "Timestamp":
		if n.Kind != yaml.ScalarNode {
			d.fail(n, "want an RFC 3339 timestamp, got %s", describe(n))
			return true
		}
		t, err := time.Parse(time.RFC3339Nano, n.Value)
		if err != nil {
			d.fail(n, "invalid timestamp %q: want RFC 3339 such as \"2024-01-02T15:04:05Z\"", n.Value)
			return true
		}
		m.Set(md.Fields().ByNumber(1), protoreflect.ValueOfInt64(t.Unix()))
		m.Set(md.Fields().ByNumber(2), protoreflect.ValueOfInt32(int32(t.Nanosecond())))
	case "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value",
		"BoolValue", "StringValue", "BytesValue":
		fd := md.Fields().ByNumber(1)
		if v, ok := d.scalar(n, fd); ok {
			m.Set(fd, v)
		}
	case "Struct", "Value", "ListValue":
		var v any
		if err := n.Decode(&v); err != nil {
			d.fail(n, "invalid value: %v", err)
			return true
		}
		pv, err := structpb.NewValue(normalizeYAML(v))
		if err != nil {
			d.fail(n, "invalid value: %v", err)
			return true
		}
		var src proto.Message = pv
		switch md.Name() {
		case "Struct":
			if pv.GetStructValue() == nil {
				d.fail(n, "want an object, got %s", describe(n))
				return true
			}
			src = pv.GetStructValue()
		case "ListValue":
			if pv.GetListValue() == nil {
				d.fail(n, "want a list, got %s", describe(n))
				return true
			}
			src = pv.GetListValue()
		}
		proto.Merge(m.Interface(), src)
	case "Empty":
		if n.Kind != yaml.MappingNode || len(n.Content) != 0 {
			d.fail(n, "want an empty object {}, got %s", describe(n))
		}
	default:
		d.fail(n, "%s is not supported here", md.FullName())
	}
	return true
}

// normalizeYAML turns values decoded by yaml into ones structpb accepts
// (map[string]any keys, float64 numbers).
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
		return x
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalizeYAML(e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// suggestField proposes a known field close to an unknown name.
func suggestField(name string, md protoreflect.MessageDescriptor) string {
	fields := md.Fields()
	names := make([]string, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		names = append(names, fields.Get(i).JSONName())
	}
	return suggest(name, names)
}

// suggest returns ` (did you mean "x"?)` for the candidate nearest to name,
// when it is near enough to be a likely typo; otherwise "".
func suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	lname := strings.ToLower(name)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if strings.ReplaceAll(lc, "_", "") == strings.ReplaceAll(lname, "_", "") {
			return fmt.Sprintf(" (did you mean %q?)", c)
		}
		if dist := editDistance(lname, lc); dist < bestDist && dist < len(c) {
			best, bestDist = c, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
