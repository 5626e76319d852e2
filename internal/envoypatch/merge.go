package envoypatch

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// durationName is replaced whole by a merge, as Istio's merge does:
// proto.Merge would merge seconds and nanos apart (2s into 1.5s gives 2.5s).
const durationName protoreflect.FullName = "google.protobuf.Duration"

// Merge merges src into dst with proto.Merge's semantics (scalars and
// messages set in src overwrite, lists append, map entries replace) except
// that a google.protobuf.Duration is replaced whole. dst and src must be
// the same message type.
func Merge(dst, src proto.Message) error {
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	if d.Descriptor().FullName() != s.Descriptor().FullName() {
		return fmt.Errorf("cannot merge %s into %s", s.Descriptor().FullName(), d.Descriptor().FullName())
	}
	mergeMessage(d, s)
	return nil
}

func mergeMessage(dst, src protoreflect.Message) {
	if src.Descriptor().FullName() == durationName {
		dst.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			dst.Clear(fd)
			return true
		})
	}
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := dst.Mutable(fd).List()
			for i := 0; i < v.List().Len(); i++ {
				e := v.List().Get(i)
				if fd.Message() != nil {
					ne := l.NewElement()
					mergeMessage(ne.Message(), e.Message())
					e = ne
				} else if fd.Kind() == protoreflect.BytesKind {
					e = protoreflect.ValueOfBytes(append([]byte(nil), e.Bytes()...))
				}
				l.Append(e)
			}
		case fd.IsMap():
			m := dst.Mutable(fd).Map()
			v.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
				if fd.MapValue().Message() != nil {
					ne := m.NewValue()
					mergeMessage(ne.Message(), e.Message())
					e = ne
				}
				m.Set(k, e)
				return true
			})
		case fd.Message() != nil:
			mergeMessage(dst.Mutable(fd).Message(), v.Message())
		case fd.Kind() == protoreflect.BytesKind:
			dst.Set(fd, protoreflect.ValueOfBytes(append([]byte(nil), v.Bytes()...)))
		default:
			dst.Set(fd, v)
		}
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(append(dst.GetUnknown(), u...))
	}
}

// mergeAny merges the message in src into the message in dst and returns
// the result packed: Istio's MergeAnyWithAny, used for typed_config. The
// two must hold the same type.
func mergeAny(dst, src *anypb.Any) (*anypb.Any, error) {
	d, err := dst.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("typed_config %s: %w", dst.GetTypeUrl(), err)
	}
	s, err := src.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("typed_config %s: %w", src.GetTypeUrl(), err)
	}
	if err := Merge(d, s); err != nil {
		return nil, err
	}
	return anypb.New(d)
}
