package filter

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// CheckFields returns an error naming the first populated field of m (by
// name, prefixed by path) that is not in honoured: a filter refuses the
// configuration it would not carry out.
func CheckFields(path string, m proto.Message, honoured ...string) error {
	var bad []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(honoured, string(fd.Name())) {
			bad = append(bad, string(fd.Name()))
		}
		return true
	})
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%s%s: not supported", path, bad[0])
}
