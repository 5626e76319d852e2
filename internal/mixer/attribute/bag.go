package attribute

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"sort"
	"time"
)

// A Bag holds attribute values. Values are string, int64, float64, bool,
// []byte (IP addresses: 16-byte form, see NormalizeIP), time.Time,
// time.Duration or map[string]string.
type Bag interface {
	Get(name string) (any, bool)
	Names() []string
}

// MapBag is a Bag backed by a map.
type MapBag map[string]any

var _ Bag = MapBag(nil)

// Get implements Bag.
func (b MapBag) Get(name string) (any, bool) { v, ok := b[name]; return v, ok }

// Names implements Bag: the names, sorted.
func (b MapBag) Names() []string {
	out := make([]string, 0, len(b))
	for n := range b {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// NormalizeIP returns the 16-byte form of a 4- or 16-byte IP address, so that
// equal addresses compare equal byte for byte; other lengths are returned as
// they are.
func NormalizeIP(b []byte) []byte {
	if len(b) == net.IPv4len {
		return net.IP(b).To16()
	}
	return b
}

// Equal reports whether two attribute values are the same value.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case map[string]string:
		y, ok := b.(map[string]string)
		return ok && maps.Equal(x, y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return a == b
}

// String renders a value for logs, dimensions and labels.
func String(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		if len(x) == net.IPv4len || len(x) == net.IPv6len {
			return net.IP(x).String()
		}
		return fmt.Sprintf("%x", x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
