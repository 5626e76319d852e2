package expr

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// functions declares Mixer's functions that CEL does not have built in
// (timestamp(string), startsWith, endsWith and matches are CEL's own).
func functions() []cel.EnvOption {
	str := func(name string, f func(string) (ref.Val, error), result *cel.Type) cel.EnvOption {
		return cel.Function(name, cel.Overload(name+"_string", []*cel.Type{cel.StringType}, result,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				s, ok := v.(types.String)
				if !ok {
					return types.NewErr("%s: want a string", name)
				}
				out, err := f(string(s))
				if err != nil {
					return types.NewErr("%s(%q): %v", name, string(s), err)
				}
				return out
			})))
	}
	return []cel.EnvOption{
		str("ip", func(s string) (ref.Val, error) {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, fmt.Errorf("not an IP address")
			}
			return types.Bytes(ip.To16()), nil
		}, cel.BytesType),
		str("email", func(s string) (ref.Val, error) {
			a, err := mail.ParseAddress(s)
			if err != nil || a.Address != s {
				return nil, fmt.Errorf("not an e-mail address")
			}
			return types.String(s), nil
		}, cel.StringType),
		str("dnsName", func(s string) (ref.Val, error) {
			if !validDNSName(s) {
				return nil, fmt.Errorf("not a DNS name")
			}
			return types.String(s), nil
		}, cel.StringType),
		str("uri", func(s string) (ref.Val, error) {
			u, err := url.Parse(s)
			if err != nil || u.Scheme == "" {
				return nil, fmt.Errorf("not an absolute URI")
			}
			return types.String(s), nil
		}, cel.StringType),
		str("toLower", func(s string) (ref.Val, error) { return types.String(strings.ToLower(s)), nil }, cel.StringType),
		cel.Function("match", cel.Overload("match_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(func(a, b ref.Val) ref.Val {
				s, ok1 := a.(types.String)
				p, ok2 := b.(types.String)
				if !ok1 || !ok2 {
					return types.NewErr("match: want two strings")
				}
				return types.Bool(Match(string(s), string(p)))
			}))),
		cel.Function("emptyStringMap", cel.Overload("emptyStringMap", nil, cel.MapType(cel.StringType, cel.StringType),
			cel.FunctionBinding(func(...ref.Val) ref.Val {
				return types.DefaultTypeAdapter.NativeToValue(map[string]string{})
			}))),
	}
}

// Match is Mixer's match(): a pattern ending in * matches by prefix, one
// starting with * by suffix, any other exactly.
func Match(s, pattern string) bool {
	switch {
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(s, pattern[:len(pattern)-1])
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(s, pattern[1:])
	}
	return s == pattern
}

func validDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
