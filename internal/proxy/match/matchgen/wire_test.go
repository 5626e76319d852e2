package matchgen

import (
	"fmt"
	"math/rand/v2"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

var matchStrings = []string{"x-user", ":authority", "Host", "jason", "/api", "a.b", "[", "(a|b)+", ".*", "a{2000}{2000}", "10"}

func filler(seed uint64) *pbwiregen.Filler {
	return &pbwiregen.Filler{R: rand.New(rand.NewPCG(seed, 7)), P: 0.5, MaxDepth: 3, Strings: matchStrings}
}

// comparable flattens a compiled matcher for deep-equal (a regexp by its
// source).
func stringKey(s match.String) string {
	re := ""
	if s.Regex != nil {
		re = s.Regex.String()
	}
	return fmt.Sprintf("%d|%q|%v|%s", s.Kind, s.Value, s.IgnoreCase, re)
}

func headerKey(h match.Header) string {
	s := h.Str
	h.Str = match.String{}
	return fmt.Sprintf("%+v|%s", h, stringKey(s))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestDecodeStringMatchesParse: random StringMatchers decode and compile
// over the wire as ParseString compiles the generated message (results and
// errors equal).
func TestDecodeStringMatchesParse(t *testing.T) {
	f := filler(1)
	accepted := 0
	for i := range 3000 {
		m := &matcherv3.StringMatcher{}
		f.Fill(m.ProtoReflect())
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, werr := ParseString(m)
		have, herr := match.DecodeString(b)
		if errText(werr) != errText(herr) || (werr == nil && stringKey(want) != stringKey(have)) {
			t.Fatalf("%d: %v\nParseString: %s %v\nDecodeString: %s %v", i, m, stringKey(want), werr, stringKey(have), herr)
		}
		if werr == nil {
			accepted++
		}
	}
	if accepted < 500 {
		t.Errorf("only %d of 3000 accepted: the generator does not reach the decoder's paths", accepted)
	}
}

// TestDecodeHeaderMatchesParse is TestDecodeStringMatchesParse for
// HeaderMatchers, including pairs of messages concatenated (a singular
// message merges, a later oneof member replaces an earlier one).
func TestDecodeHeaderMatchesParse(t *testing.T) {
	f := filler(2)
	accepted := 0
	kinds := map[string]int{}
	for i := range 4000 {
		m := &routev3.HeaderMatcher{}
		f.Fill(m.ProtoReflect())
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			m2 := &routev3.HeaderMatcher{}
			f.Fill(m2.ProtoReflect())
			b2, _ := proto.Marshal(m2)
			b = append(b, b2...)
			m = &routev3.HeaderMatcher{}
			if err := proto.Unmarshal(b, m); err != nil {
				t.Fatal(err)
			}
		}
		want, werr := ParseHeader(m)
		have, herr := match.DecodeHeader(b)
		if errText(werr) != errText(herr) || (werr == nil && headerKey(want) != headerKey(have)) {
			t.Fatalf("%d: %v\nParseHeader: %s %v\nDecodeHeader: %s %v", i, m, headerKey(want), werr, headerKey(have), herr)
		}
		if werr == nil {
			accepted++
			if o := m.ProtoReflect().WhichOneof(m.ProtoReflect().Descriptor().Oneofs().ByName("header_match_specifier")); o != nil {
				kinds[string(o.Name())]++
			}
		}
	}
	if accepted < 1000 {
		t.Errorf("only %d of 4000 accepted", accepted)
	}
	if len(kinds) < 8 {
		t.Errorf("accepted specifiers %v: every one should be reached", kinds)
	}
}

func TestDecodeWireErrors(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{[]byte{0x0a}, "header matcher: invalid wire-format data"},
		{[]byte{0x0a, 0x01, 0xff}, "header matcher: envoy.config.route.v3.HeaderMatcher.name: invalid UTF-8"},
		{[]byte{}, "name is empty"},
	} {
		_, err := match.DecodeHeader(c.b)
		if errText(err) != c.want {
			t.Errorf("match.DecodeHeader(%x): %v, want %s", c.b, err, c.want)
		}
	}
	// A field with the wrong wire type is unknown, as in proto.Unmarshal:
	// name as a varint leaves the name empty.
	if _, err := match.DecodeHeader([]byte{0x08, 0x01}); errText(err) != "name is empty" {
		t.Errorf("name as a varint: %v", err)
	}
}

func seedMatchers() [][]byte {
	var out [][]byte
	for _, m := range []proto.Message{
		&routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "a.*"}}, IgnoreCase: true}}},
		&routev3.HeaderMatcher{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true},
		&routev3.HeaderMatcher{Name: "x-n", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{}},
		&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/api"}},
	} {
		b, _ := proto.Marshal(m)
		out = append(out, b)
	}
	return out
}

// FuzzDecodeHeader: the wire decoder never panics and agrees with
// proto.Unmarshal + ParseHeader (and StringMatcher likewise) whenever
// proto.Unmarshal accepts the bytes.
func FuzzDecodeHeader(f *testing.F) {
	for _, b := range seedMatchers() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		have, herr := match.DecodeHeader(b)
		hm := &routev3.HeaderMatcher{}
		if proto.Unmarshal(b, hm) != nil {
			if herr == nil {
				t.Fatalf("proto.Unmarshal refuses %x, DecodeHeader accepts it", b)
			}
		} else if want, werr := ParseHeader(hm); errText(werr) != errText(herr) || (werr == nil && headerKey(want) != headerKey(have)) {
			t.Fatalf("%x: ParseHeader %s %v, DecodeHeader %s %v", b, headerKey(want), werr, headerKey(have), herr)
		}
		hs, serr := match.DecodeString(b)
		sm := &matcherv3.StringMatcher{}
		if proto.Unmarshal(b, sm) == nil {
			if want, werr := ParseString(sm); errText(werr) != errText(serr) || (werr == nil && stringKey(want) != stringKey(hs)) {
				t.Fatalf("%x: ParseString %s %v, DecodeString %s %v", b, stringKey(want), werr, stringKey(hs), serr)
			}
		}
	})
}
