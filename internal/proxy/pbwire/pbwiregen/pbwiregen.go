// Package pbwiregen writes pbwire tables from protobuf descriptors and fills
// messages at random for differential tests. Only tests import it: the
// descriptors come from the generated packages the proxy no longer links.
package pbwiregen

import (
	"bytes"
	"fmt"
	"go/format"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// Table returns a lean table of every message type reachable from roots,
// roots first (their indexes are 0, 1, ...), fields in declaration order.
func Table(roots ...protoreflect.MessageDescriptor) (pbwire.Table, error) {
	return table(false, roots)
}

// FullTable is Table with what rendering a message needs: fields in number
// order with their declared scalar types and map marks, and the enums of
// enum fields (after the messages) naming their values.
func FullTable(roots ...protoreflect.MessageDescriptor) (pbwire.Table, error) {
	return table(true, roots)
}

func table(full bool, roots []protoreflect.MessageDescriptor) (pbwire.Table, error) {
	var order []protoreflect.MessageDescriptor
	index := map[protoreflect.FullName]int{}
	add := func(md protoreflect.MessageDescriptor) {
		if _, ok := index[md.FullName()]; !ok {
			index[md.FullName()] = len(order)
			order = append(order, md)
		}
	}
	for _, r := range roots {
		add(r)
	}
	for i := 0; i < len(order); i++ {
		fs := order[i].Fields()
		for j := 0; j < fs.Len(); j++ {
			if md := fs.Get(j).Message(); md != nil {
				add(md)
			}
		}
	}
	var enums []protoreflect.EnumDescriptor
	enumIndex := map[protoreflect.FullName]int{}
	t := make(pbwire.Table, len(order))
	for i, md := range order {
		t[i].Name = string(md.FullName())
		fs := md.Fields()
		var fds []protoreflect.FieldDescriptor
		for j := 0; j < fs.Len(); j++ {
			fds = append(fds, fs.Get(j))
		}
		if full {
			slices.SortFunc(fds, func(a, b protoreflect.FieldDescriptor) int { return int(a.Number() - b.Number()) })
		}
		for _, fd := range fds {
			k, err := kind(fd)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fd.FullName(), err)
			}
			if !full && (fd.Kind() == protoreflect.Sint32Kind || fd.Kind() == protoreflect.Sint64Kind) {
				// A lean table cannot tell a zigzag varint from another.
				return nil, fmt.Errorf("%s: kind %v needs a full table", fd.FullName(), fd.Kind())
			}
			f := pbwire.Field{Num: fd.Number(), Name: string(fd.Name()), Kind: k}
			if fd.IsList() || fd.IsMap() {
				f.List = true
			} else if fd.HasPresence() {
				f.Presence = true
			}
			if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
				f.Oneof = uint8(o.Index() + 1)
			}
			if md := fd.Message(); md != nil {
				f.Msg = int32(index[md.FullName()])
			}
			if full {
				f.Map = fd.IsMap()
				if k.Scalar() {
					f.Scalar = scalarTypes[fd.Kind()]
				}
				if e := fd.Enum(); e != nil {
					if _, ok := enumIndex[e.FullName()]; !ok {
						enumIndex[e.FullName()] = len(order) + len(enums)
						enums = append(enums, e)
					}
					f.Msg = int32(enumIndex[e.FullName()])
				}
			}
			t[i].Fields = append(t[i].Fields, f)
		}
	}
	for _, e := range enums {
		d := pbwire.Desc{Name: string(e.FullName()), Enum: true}
		vs := e.Values()
		for j := 0; j < vs.Len(); j++ {
			d.Fields = append(d.Fields, pbwire.Field{Num: protowire.Number(vs.Get(j).Number()), Name: string(vs.Get(j).Name())})
		}
		t = append(t, d)
	}
	return t, nil
}

var scalarTypes = map[protoreflect.Kind]pbwire.Scalar{
	protoreflect.BoolKind: pbwire.ScalarBool, protoreflect.EnumKind: pbwire.ScalarEnum,
	protoreflect.Int32Kind: pbwire.ScalarInt32, protoreflect.Int64Kind: pbwire.ScalarInt64,
	protoreflect.Uint32Kind: pbwire.ScalarUint32, protoreflect.Uint64Kind: pbwire.ScalarUint64,
	protoreflect.Sint32Kind: pbwire.ScalarSint32, protoreflect.Sint64Kind: pbwire.ScalarSint64,
	protoreflect.Fixed32Kind: pbwire.ScalarFixed32, protoreflect.Sfixed32Kind: pbwire.ScalarSfixed32,
	protoreflect.FloatKind: pbwire.ScalarFloat, protoreflect.Fixed64Kind: pbwire.ScalarFixed64,
	protoreflect.Sfixed64Kind: pbwire.ScalarSfixed64, protoreflect.DoubleKind: pbwire.ScalarDouble,
}

var kindNames = map[pbwire.Kind]string{pbwire.Varint: "Varint", pbwire.Fixed32: "Fixed32", pbwire.Fixed64: "Fixed64",
	pbwire.Bytes: "Bytes", pbwire.String: "String", pbwire.Message: "Message"}

// Source returns a Go file of package pkg declaring var name pbwire.Table
// (a lean table, see Table) and a constant per root naming its index
// (constNames[i]).
func Source(pkg, name string, constNames []string, roots ...protoreflect.MessageDescriptor) ([]byte, error) {
	t, err := Table(roots...)
	if err != nil {
		return nil, err
	}
	return source(pkg, name, constNames, roots, t)
}

// FullSource is Source for a full table (FullTable).
func FullSource(pkg, name string, constNames []string, roots ...protoreflect.MessageDescriptor) ([]byte, error) {
	t, err := FullTable(roots...)
	if err != nil {
		return nil, err
	}
	return source(pkg, name, constNames, roots, t)
}

func source(pkg, name string, constNames []string, roots []protoreflect.MessageDescriptor, t pbwire.Table) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by pbwiregen from the protobuf descriptors (go test -run TestWireTable -update); DO NOT EDIT.\n\npackage %s\n\n", pkg)
	b.WriteString("import \"github.com/mast-mesh/mast/internal/proxy/pbwire\"\n\n")
	if len(constNames) > 0 {
		b.WriteString("const (\n")
		for i, c := range constNames {
			if c != "" {
				fmt.Fprintf(&b, "\t%s = %d // %s\n", c, i, roots[i].FullName())
			}
		}
		b.WriteString(")\n\n")
	}
	fmt.Fprintf(&b, "var %s = pbwire.Table{\n", name)
	for i, d := range t {
		if d.Enum {
			fmt.Fprintf(&b, "\t{Name: %q, Enum: true, Fields: []pbwire.Field{ // %d\n", d.Name, i)
			for _, f := range d.Fields {
				fmt.Fprintf(&b, "\t\t{Num: %d, Name: %q},\n", f.Num, f.Name)
			}
			b.WriteString("\t}},\n")
			continue
		}
		fmt.Fprintf(&b, "\t{Name: %q, Fields: []pbwire.Field{ // %d\n", d.Name, i)
		for _, f := range d.Fields {
			fmt.Fprintf(&b, "\t\t{Num: %d, Name: %q, Kind: pbwire.%s", f.Num, f.Name, kindNames[f.Kind])
			if f.List {
				b.WriteString(", List: true")
			}
			if f.Map {
				b.WriteString(", Map: true")
			}
			if f.Presence {
				b.WriteString(", Presence: true")
			}
			if f.Oneof != 0 {
				fmt.Fprintf(&b, ", Oneof: %d", f.Oneof)
			}
			if f.Scalar != pbwire.ScalarNone {
				fmt.Fprintf(&b, ", Scalar: pbwire.%s", scalarNames[f.Scalar])
			}
			if f.Kind == pbwire.Message || f.Scalar == pbwire.ScalarEnum {
				fmt.Fprintf(&b, ", Msg: %d", f.Msg)
			}
			b.WriteString("},\n")
		}
		b.WriteString("\t}},\n")
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}

var scalarNames = map[pbwire.Scalar]string{
	pbwire.ScalarBool: "ScalarBool", pbwire.ScalarEnum: "ScalarEnum", pbwire.ScalarInt32: "ScalarInt32",
	pbwire.ScalarInt64: "ScalarInt64", pbwire.ScalarUint32: "ScalarUint32", pbwire.ScalarUint64: "ScalarUint64",
	pbwire.ScalarSint32: "ScalarSint32", pbwire.ScalarSint64: "ScalarSint64", pbwire.ScalarFixed32: "ScalarFixed32",
	pbwire.ScalarSfixed32: "ScalarSfixed32", pbwire.ScalarFloat: "ScalarFloat", pbwire.ScalarFixed64: "ScalarFixed64",
	pbwire.ScalarSfixed64: "ScalarSfixed64", pbwire.ScalarDouble: "ScalarDouble",
}

func kind(fd protoreflect.FieldDescriptor) (pbwire.Kind, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Int64Kind,
		protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return pbwire.Varint, nil
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return pbwire.Fixed32, nil
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return pbwire.Fixed64, nil
	case protoreflect.StringKind:
		return pbwire.String, nil
	case protoreflect.BytesKind:
		return pbwire.Bytes, nil
	case protoreflect.MessageKind:
		return pbwire.Message, nil
	}
	return 0, fmt.Errorf("kind %v not supported by pbwire", fd.Kind())
}

// Filler sets fields of messages at random.
type Filler struct {
	R *rand.Rand
	// P is the probability that a field (or a oneof) is set.
	P float64
	// MaxDepth bounds nesting.
	MaxDepth int
	// Strings are the values strings are drawn from (with "" and random
	// bytes sometimes).
	Strings []string
	// OneofP, when not zero, is the probability that a oneof is set.
	OneofP float64
	// Skip lists message types left empty (google.protobuf.Any, Struct...).
	Skip map[protoreflect.FullName]bool
	// Avoid lists fields (by full name) never set.
	Avoid map[protoreflect.FullName]bool
}

// Fill sets fields of m at random.
func (f *Filler) Fill(m protoreflect.Message) { f.fill(m, 0) }

func (f *Filler) fill(m protoreflect.Message, depth int) {
	md := m.Descriptor()
	if depth > f.MaxDepth || f.Skip[md.FullName()] {
		return
	}
	fs := md.Fields()
	seen := map[int]bool{}
	for i := 0; i < fs.Len(); i++ {
		fd := fs.Get(i)
		if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
			if seen[o.Index()] {
				continue
			}
			seen[o.Index()] = true
			p := f.P
			if f.OneofP != 0 {
				p = f.OneofP
			}
			if f.R.Float64() >= p {
				continue
			}
			var ok []protoreflect.FieldDescriptor
			for j := 0; j < o.Fields().Len(); j++ {
				if !f.Avoid[o.Fields().Get(j).FullName()] {
					ok = append(ok, o.Fields().Get(j))
				}
			}
			if len(ok) > 0 {
				f.set(m, ok[f.R.IntN(len(ok))], depth)
			}
			continue
		}
		if f.Avoid[fd.FullName()] || f.R.Float64() >= f.P {
			continue
		}
		f.set(m, fd, depth)
	}
}

func (f *Filler) set(m protoreflect.Message, fd protoreflect.FieldDescriptor, depth int) {
	switch {
	case fd.IsMap():
		mp := m.Mutable(fd).Map()
		for n := 1 + f.R.IntN(2); n > 0; n-- {
			k := f.scalar(fd.MapKey())
			if fd.MapValue().Message() != nil {
				v := mp.NewValue()
				f.fill(v.Message(), depth+1)
				mp.Set(k.MapKey(), v)
			} else {
				mp.Set(k.MapKey(), f.scalar(fd.MapValue()))
			}
		}
	case fd.IsList():
		l := m.Mutable(fd).List()
		for n := 1 + f.R.IntN(3); n > 0; n-- {
			if fd.Message() != nil {
				v := l.NewElement()
				f.fill(v.Message(), depth+1)
				l.Append(v)
			} else {
				l.Append(f.scalar(fd))
			}
		}
	case fd.Message() != nil:
		f.fill(m.Mutable(fd).Message(), depth+1)
	default:
		m.Set(fd, f.scalar(fd))
	}
}

func (f *Filler) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	r := f.R
	small := func() int64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return r.Int64N(3)
		case 2:
			return r.Int64N(2000) - 100
		}
		return r.Int64()
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.EnumKind:
		vs := fd.Enum().Values()
		if r.IntN(10) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(vs.Len() + r.IntN(3)))
		}
		return protoreflect.ValueOfEnum(vs.Get(r.IntN(vs.Len())).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(small()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(small())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(small()))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(small()))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(small()) / 7)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64([]float64{0, 1, 0.5, 50, 100, 150, -1, 1e9}[r.IntN(8)])
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(f.str())
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(f.str()))
	}
	panic(fmt.Sprintf("pbwiregen: kind %v", fd.Kind()))
}

func (f *Filler) str() string {
	switch n := f.R.IntN(10); {
	case n == 0:
		return ""
	case n == 1 || len(f.Strings) == 0:
		b := make([]byte, f.R.IntN(6))
		for i := range b {
			const alphabet = "ab/.*:-_AZ09?[(x"
			b[i] = alphabet[f.R.IntN(len(alphabet))]
		}
		return string(b)
	}
	return f.Strings[f.R.IntN(len(f.Strings))]
}

// CheckFile fails t unless the file at path holds src; with update it writes
// src there first. pkgDir is the package's directory from the module root,
// named in the failure with the command that rewrites the file.
func CheckFile(t testing.TB, path string, src []byte, update bool, pkgDir string) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, src) {
		t.Fatalf("%s is stale: go test %s -run TestWireTable -update", path, pkgDir)
	}
}

// SameParse fails t unless two parsers of the same input (what names it)
// agree: the same error text, or no error and results that eq (nil:
// reflect.DeepEqual) finds equal. Errors that both begin with undecodable
// (when not "") are for bytes that are not a protobuf encoding, worded by
// each decoder: they agree whatever follows.
func SameParse[T any](t testing.TB, what string, want T, werr error, have T, herr error, undecodable string, eq func(want, have T) bool) {
	t.Helper()
	if undecodable != "" && werr != nil && herr != nil &&
		strings.HasPrefix(werr.Error(), undecodable) && strings.HasPrefix(herr.Error(), undecodable) {
		return
	}
	if errText(werr) != errText(herr) {
		t.Fatalf("%s: generated error %v, wire error %v", what, werr, herr)
	}
	if eq == nil {
		eq = func(want, have T) bool { return reflect.DeepEqual(want, have) }
	}
	if werr == nil && !eq(want, have) {
		t.Fatalf("%s: generated %+v\nwire %+v", what, want, have)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
