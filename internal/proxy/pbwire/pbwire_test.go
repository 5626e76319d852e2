package pbwire_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

func subjects(t testing.TB) (pbwire.Table, []proto.Message) {
	roots := []proto.Message{&rbacv3.RBAC{}, &jwtv3.JwtAuthentication{}}
	var mds []protoreflect.MessageDescriptor
	for _, r := range roots {
		mds = append(mds, r.ProtoReflect().Descriptor())
	}
	tab, err := pbwiregen.Table(mds...)
	if err != nil {
		t.Fatal(err)
	}
	return tab, roots
}

// same compares a message decoded by proto.Unmarshal with the one pbwire
// decoded, field by field, recursively; it returns the first difference.
func same(pm protoreflect.Message, wm *pbwire.Msg, path string) error {
	fs := pm.Descriptor().Fields()
	var set []string
	pm.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		set = append(set, string(fd.Name()))
		return true
	})
	have := wm.Set()
	slices.Sort(set)
	slices.Sort(have)
	if !slices.Equal(set, have) {
		return fmt.Errorf("%s: set fields %v, pbwire %v", path, set, have)
	}
	for i := 0; i < fs.Len(); i++ {
		fd := fs.Get(i)
		num := fd.Number()
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap() && fd.MapKey().Kind() != protoreflect.StringKind:
			// Map reads string keys only (every map the proxy reads).
			if pm.Get(fd).Map().Len() == 0 != !wm.Has(num) {
				return fmt.Errorf("%s: set differs", p)
			}
		case fd.IsMap():
			keys, vals := wm.Map(num)
			mp := pm.Get(fd).Map()
			if mp.Len() != len(keys) {
				return fmt.Errorf("%s: %d entries, pbwire %d", p, mp.Len(), len(keys))
			}
			for j, k := range keys {
				v := mp.Get(protoreflect.ValueOfString(k).MapKey())
				if !v.IsValid() {
					return fmt.Errorf("%s: key %q missing", p, k)
				}
				if fd.MapValue().Message() != nil {
					if err := same(v.Message(), vals[j], p+"["+k+"]"); err != nil {
						return err
					}
				}
			}
		case fd.IsList():
			l := pm.Get(fd).List()
			if fd.Message() != nil {
				subs := wm.Subs(num)
				if l.Len() != len(subs) {
					return fmt.Errorf("%s: %d elements, pbwire %d", p, l.Len(), len(subs))
				}
				for j := range subs {
					if err := same(l.Get(j).Message(), subs[j], fmt.Sprintf("%s[%d]", p, j)); err != nil {
						return err
					}
				}
				continue
			}
			var want []string
			for j := 0; j < l.Len(); j++ {
				want = append(want, scalar(fd, l.Get(j)))
			}
			var got []string
			if fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind {
				got = wm.Strs(num)
			} else {
				for _, n := range wm.Nums(num) {
					got = append(got, wireScalar(fd, n))
				}
			}
			if !slices.Equal(want, got) {
				return fmt.Errorf("%s: %q, pbwire %q", p, want, got)
			}
		case fd.Message() != nil:
			if pm.Has(fd) != wm.Has(num) {
				return fmt.Errorf("%s: present %v, pbwire %v", p, pm.Has(fd), wm.Has(num))
			}
			if pm.Has(fd) {
				if err := same(pm.Get(fd).Message(), wm.Sub(num), p); err != nil {
					return err
				}
			}
		case fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind:
			if want, got := scalar(fd, pm.Get(fd)), wm.Str(num); want != got {
				return fmt.Errorf("%s: %q, pbwire %q", p, want, got)
			}
		default:
			if want, got := scalar(fd, pm.Get(fd)), wireScalar(fd, wm.U64(num)); want != got {
				return fmt.Errorf("%s: %s, pbwire %s", p, want, got)
			}
		}
	}
	return nil
}

func scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return string(v.Bytes())
	case protoreflect.EnumKind:
		return fmt.Sprint(int32(v.Enum()))
	case protoreflect.DoubleKind:
		return fmt.Sprint(math.Float64bits(v.Float()))
	case protoreflect.FloatKind:
		return fmt.Sprint(math.Float32bits(float32(v.Float())))
	}
	return fmt.Sprint(v.Interface())
}

func wireScalar(fd protoreflect.FieldDescriptor, n uint64) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return fmt.Sprint(n != 0)
	case protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sfixed32Kind:
		return fmt.Sprint(int32(n))
	case protoreflect.Int64Kind, protoreflect.Sfixed64Kind:
		return fmt.Sprint(int64(n))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.FloatKind:
		return fmt.Sprint(uint32(n))
	}
	return fmt.Sprint(n)
}

func check(t *testing.T, tab pbwire.Table, root int, proto0 proto.Message, b []byte) {
	t.Helper()
	pm := proto0.ProtoReflect().Type().New().Interface()
	perr := proto.Unmarshal(b, pm)
	wm, werr := pbwire.Decode(tab, root, b)
	if (perr == nil) != (werr == nil) {
		t.Fatalf("%x: proto.Unmarshal %v, pbwire.Decode %v", b, perr, werr)
	}
	if perr != nil {
		return
	}
	if err := same(pm.ProtoReflect(), wm, tab[root].Name); err != nil {
		t.Fatalf("%x: %v", b, err)
	}
}

// TestDecodeMatchesUnmarshal: random RBAC and JwtAuthentication messages
// (and concatenated pairs, which merge) decode as proto.Unmarshal decodes
// them, every field compared.
func TestDecodeMatchesUnmarshal(t *testing.T) {
	tab, roots := subjects(t)
	f := &pbwiregen.Filler{R: rand.New(rand.NewPCG(3, 4)), P: 0.4, MaxDepth: 6, Strings: []string{"a", "b", "ns/default"}}
	for i := range 600 {
		root := i % len(roots)
		m := roots[root].ProtoReflect().Type().New()
		f.Fill(m)
		b, err := proto.Marshal(m.Interface())
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			m2 := roots[root].ProtoReflect().Type().New()
			f.Fill(m2)
			b2, _ := proto.Marshal(m2.Interface())
			b = append(b, b2...)
		}
		check(t, tab, root, roots[root], b)
	}
}

func TestDecodeEdges(t *testing.T) {
	tab, roots := subjects(t)
	jwt := roots[1]
	var b []byte
	// bypass_cors_preflight (9) as a varint, then with a wrong wire type.
	b = protowire.AppendTag(b, 9, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("x"))
	check(t, tab, 1, jwt, b)
	// Invalid UTF-8 in a string is refused, as proto.Unmarshal does.
	var bad []byte
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendBytes(entry, []byte{0xff})
	bad = protowire.AppendTag(bad, 1, protowire.BytesType) // providers map
	bad = protowire.AppendBytes(bad, entry)
	check(t, tab, 1, jwt, bad)
	// Truncated.
	check(t, tab, 0, roots[0], []byte{0x0a, 0x05, 0x01})

	// A oneof's members in turn (Permission.rule: and_rules 1, any 3,
	// header 4): the last member wins, and only the pieces sent after the
	// last change of member merge.
	perm := tab.Index("envoy.config.rbac.v3.Permission")
	header := func(name string) []byte {
		h := protowire.AppendTag(nil, 1, protowire.BytesType)
		return protowire.AppendString(h, name)
	}
	var sw []byte
	for _, f := range []struct {
		num protowire.Number
		val []byte
	}{{4, header("a")}, {3, nil}, {4, header("b")}, {4, []byte{0x20, 0x01}}, {1, nil}, {4, header("c")}} {
		if f.num == 3 {
			sw = protowire.AppendTag(sw, 3, protowire.VarintType)
			sw = protowire.AppendVarint(sw, 1)
			continue
		}
		sw = protowire.AppendTag(sw, f.num, protowire.BytesType)
		sw = protowire.AppendBytes(sw, f.val)
	}
	check(t, tab, perm, &rbacv3.Permission{}, sw)
	check(t, tab, perm, &rbacv3.Permission{}, sw[:len(sw)-5])
	// Lists interleaved with each other and with singular fields
	// (RBAC.Policy: permissions 1, principals 2, condition 3) keep
	// each list's order.
	policy := tab.Index("envoy.config.rbac.v3.Policy")
	var il []byte
	for i := range 50 {
		il = protowire.AppendTag(il, protowire.Number(1+i%3), protowire.BytesType)
		il = protowire.AppendBytes(il, protowire.AppendVarint([]byte{0x18}, uint64(i%2)))
	}
	check(t, tab, policy, &rbacv3.Policy{}, il)
}

// BenchmarkDecodeInterleaved: two lists sent in turn, 2,000 elements each;
// the cost grows with n log n, not with n² (values are sorted once, not
// inserted one by one).
func BenchmarkDecodeInterleaved(b *testing.B) {
	tab, _ := subjects(b)
	policy := tab.Index("envoy.config.rbac.v3.Policy")
	var il []byte
	for i := range 4000 {
		il = protowire.AppendTag(il, protowire.Number(1+i%2), protowire.BytesType)
		il = protowire.AppendBytes(il, []byte{0x18, 0x01})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pbwire.Decode(tab, policy, il); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecode: pbwire.Decode never panics and agrees with proto.Unmarshal on
// every field of RBAC and JwtAuthentication.
func FuzzDecode(f *testing.F) {
	tab, roots := subjects(f)
	fl := &pbwiregen.Filler{R: rand.New(rand.NewPCG(5, 6)), P: 0.4, MaxDepth: 4, Strings: []string{"a"}}
	for i := range 8 {
		m := roots[i%2].ProtoReflect().Type().New()
		fl.Fill(m)
		b, _ := proto.Marshal(m.Interface())
		f.Add(uint8(i%2), b)
	}
	f.Fuzz(func(t *testing.T, root uint8, b []byte) {
		r := int(root) % len(roots)
		check(t, tab, r, roots[r], b)
	})
}

// TestDecodeZeroCopy: string, bytes and message values are slices of the
// input, at any depth (an Any's value is handed on without a copy).
func TestDecodeZeroCopy(t *testing.T) {
	tab, err := pbwiregen.Table((&rbacv3.RBAC{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	rbac := &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"p": {
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}}}}
	b, err := proto.Marshal(rbac)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pbwire.Decode(tab, 0, b)
	if err != nil {
		t.Fatal(err)
	}
	// RBAC.policies (2): the entry's key (1) and, in its value (2), the
	// encoding of permissions[0] (1).
	entry := m.Subs(2)[0]
	for _, v := range [][]byte{m.Bytes(2), entry.Bytes(1), entry.Sub(2).Bytes(1)} {
		if !inside(b, v) {
			t.Errorf("%x is a copy, not a slice of the input", v)
		}
	}
}

// inside reports whether sub is a (non-empty) slice of b.
func inside(b, sub []byte) bool {
	for i := range b {
		if len(sub) > 0 && &b[i] == &sub[0] {
			return true
		}
	}
	return false
}
