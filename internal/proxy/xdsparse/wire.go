package xdsparse

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// The wire decoder reads xDS resources straight from their encoding with
// pbwire, so that mast-proxy links none of go-control-plane's generated
// packages (whose code, type data and lazily built tables are most of a
// sidecar's memory). It keeps the generated path's semantics:
//
//   - wireTable (wire_gen.go, a full pbwire table generated from
//     go-control-plane's descriptors by TestWireTable) names every field of
//     every message reachable from a decoded resource, with its kind, and
//     every enum's values;
//   - validateWire checks a whole resource as proto.Unmarshal would, once;
//     decodeWire gives one message's fields with proto3's merge rules, its
//     message fields decoded when first read (pbwire);
//   - checkWire is checkFields over the wire: every set field the rules do
//     not honour or know to be cosmetic is refused by path.

// validateWire checks an encoded message of type wireTable[di] and every
// message inside it as proto.Unmarshal does, and says what is wrong in
// proto.Unmarshal's words (the generated path's errors).
func validateWire(di int, b []byte) error {
	err := wireTable.Validate(di, b)
	switch {
	case errors.Is(err, pbwire.ErrInvalidUTF8):
		return errInvalidUTF8
	case errors.Is(err, pbwire.ErrDepth):
		return errRecursionDepth
	}
	return err
}

// proto.Unmarshal's errors.
var (
	errInvalidUTF8    = errors.New("string field contains invalid UTF-8")
	errRecursionDepth = errors.New("exceeded maximum recursion depth")
)

// decodeWire decodes one level of a validated message of type
// wireTable[di].
func decodeWire(di int, b []byte) *pbwire.Msg { return wireTable.DecodeValid(di, b) }

// mapEntries returns map field num's keys and value encodings, a later
// entry replacing an earlier one of the same key, in first-seen order.
func mapEntries(m *pbwire.Msg, num protowire.Number) (keys []string, values [][]byte) {
	keys, entries := m.MapEntries(m.Vals(num))
	if len(entries) > 0 {
		values = make([][]byte, len(entries))
		for i, e := range entries {
			values[i] = e.Bytes(mapValue)
		}
	}
	return keys, values
}

// mapMsg returns map field num's (message) value for key, nil when
// absent.
func mapMsg(m *pbwire.Msg, num protowire.Number, key string) *pbwire.Msg {
	keys, entries := m.MapEntries(m.Vals(num))
	if i := slices.Index(keys, key); i >= 0 {
		return entries[i].Sub(mapValue)
	}
	return nil
}

// enumName prints enum field num's value v (read from m) as the generated
// enum's String does: its name, or the number when unknown.
func enumName(m *pbwire.Msg, num protowire.Number, v int32) string {
	if m == nil {
		return strconv.Itoa(int(v))
	}
	return descEnumName(m.Desc(), num, v)
}

// descEnumName is enumName for a field of message type d.
func descEnumName(d *pbwire.Desc, num protowire.Number, v int32) string {
	for _, f := range d.Fields {
		if f.Num == num {
			if name := wireTable.EnumName(f.Msg, v); name != "" {
				return name
			}
		}
	}
	return strconv.Itoa(int(v))
}

// checkWire is checkFields over a decoded message: it names every set
// field rs neither honours nor knows to be cosmetic. The messages it
// decodes stay in m for the parse.
func checkWire(m *pbwire.Msg, rs fieldRules) error {
	var bad []string
	var key []byte
	var walk func(m *pbwire.Msg, path string)
	walk = func(m *pbwire.Msg, path string) {
		for fd, run := range m.All {
			if !pbwire.IsSet(fd, run) {
				continue
			}
			key = append(append(append(key[:0], m.Type()...), '.'), fd.Name...)
			sup := rs[protoreflect.FullName(key)]
			if sup == cosmetic || sup == parsedApart {
				continue
			}
			p := fd.Name
			if path != "" {
				p = path + "." + p
			}
			if sup != honoured {
				bad = append(bad, p)
				continue
			}
			switch {
			case fd.Map:
				if wireTable[fd.Msg].Fields[1].Kind != pbwire.Message {
					continue
				}
				keys, entries := m.MapEntries(run)
				for j, k := range keys {
					walk(entries[j].Sub(mapValue), p+"["+k+"]")
				}
			case fd.List:
				if fd.Kind == pbwire.Message {
					for j := range run {
						walk(m.SubOf(&run[j]), p+"["+strconv.Itoa(j)+"]")
					}
				}
			case fd.Kind == pbwire.Message && !strings.HasPrefix(wireTable[fd.Msg].Name, "google.protobuf."):
				walk(m.SubOf(&run[0]), p)
			}
		}
	}
	walk(m, "")
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("not supported by mast-proxy: %s", strings.Join(bad, ", "))
}
