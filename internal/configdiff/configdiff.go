// Package configdiff compares two Envoy config dumps resource by resource:
// what mastd would send a proxy (its /debug/config_dump?proxyID=) and what
// the proxy holds (its admin /config_dump), for `mast proxy-status PROXY`.
package configdiff

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// diffSections are the config dump sections `mast proxy-status PROXY`
// compares, as istioctl does (and endpoints, which it does not).
var diffSections = []struct{ title, dumpType, key, field string }{
	{"Clusters", "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters", "cluster"},
	{"Endpoints", "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs", "endpoint_config"},
	{"Listeners", "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners", "listener"},
	{"Routes", "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs", "route_config"},
}

// Section is how one section of mastd's dump differs from the proxy's.
type Section struct {
	Title     string
	OnlyMastd []string          // resources mastd would send that the proxy lacks
	OnlyProxy []string          // resources the proxy has that mastd would not send
	Differ    map[string]string // resource name -> a line diff, mastd (-) vs proxy (+)
}

func (d Section) match() bool {
	return len(d.OnlyMastd) == 0 && len(d.OnlyProxy) == 0 && len(d.Differ) == 0
}

// Diff compares what mastd would send (its /debug/config_dump)
// with what the proxy holds (its admin /config_dump), resource by resource.
// Each resource is compared as decoded JSON, so key order and whitespace do
// not matter; a resource the proxy could only show as bytes (value_base64)
// is decoded with the types this binary links first.
func Diff(mastd, proxy []byte) ([]Section, error) {
	m, err := dumpResources(mastd)
	if err != nil {
		return nil, fmt.Errorf("mastd's config dump: %w", err)
	}
	p, err := dumpResources(proxy)
	if err != nil {
		return nil, fmt.Errorf("the proxy's config dump: %w", err)
	}
	var out []Section
	for _, sec := range diffSections {
		ms, ps := m[sec.dumpType], p[sec.dumpType]
		d := Section{Title: sec.title, Differ: map[string]string{}}
		for name, mv := range ms {
			pv, ok := ps[name]
			switch {
			case !ok:
				d.OnlyMastd = append(d.OnlyMastd, name)
			case !reflect.DeepEqual(mv, pv):
				d.Differ[name] = lineDiff(indentJSON(mv), indentJSON(pv))
			}
		}
		for name := range ps {
			if _, ok := ms[name]; !ok {
				d.OnlyProxy = append(d.OnlyProxy, name)
			}
		}
		sort.Strings(d.OnlyMastd)
		sort.Strings(d.OnlyProxy)
		out = append(out, d)
	}
	return out, nil
}

// dumpResources decodes a config dump into dump type -> resource name ->
// the resource as generic JSON.
func dumpResources(b []byte) (map[string]map[string]any, error) {
	var dump struct {
		Configs []map[string]json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal(b, &dump); err != nil {
		return nil, err
	}
	out := map[string]map[string]any{}
	for _, c := range dump.Configs {
		var typ string
		if json.Unmarshal(c["@type"], &typ) != nil {
			continue
		}
		for _, sec := range diffSections {
			if sec.dumpType != typ {
				continue
			}
			var items []map[string]json.RawMessage
			if err := json.Unmarshal(c[sec.key], &items); err != nil && c[sec.key] != nil {
				return nil, fmt.Errorf("%s: %w", sec.key, err)
			}
			res := map[string]any{}
			for _, it := range items {
				raw := it[sec.field]
				if sec.field == "listener" {
					var st struct {
						Listener json.RawMessage `json:"listener"`
					}
					_ = json.Unmarshal(it["active_state"], &st)
					raw = st.Listener
				}
				v, err := resourceValue(raw)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", sec.key, err)
				}
				res[resourceName(v)] = v
			}
			out[typ] = res
		}
	}
	return out, nil
}

// resourceValue decodes one resource's JSON; a resource shown as bytes
// ({"@type", "value_base64"}) is decoded and rendered as protojson first,
// and so is any Any inside it that the proxy could only show as bytes
// (best effort: one whose type this binary does not know stays as it is).
func resourceValue(raw json.RawMessage) (any, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	if obj, ok := v.(map[string]any); ok {
		if _, ok := obj["value_base64"].(string); ok {
			r, err := anyJSON(obj)
			if err != nil {
				return nil, err
			}
			v = r
		}
	}
	return expandAnys(v), nil
}

// anyJSON renders {"@type", "value_base64"} as protojson renders the Any.
func anyJSON(obj map[string]any) (any, error) {
	typ, _ := obj["@type"].(string)
	b64, _ := obj["value_base64"].(string)
	value, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%s: value_base64: %w", typ, err)
	}
	j, err := protojson.Marshal(&anypb.Any{TypeUrl: typ, Value: value})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	var v any
	if err := json.Unmarshal(j, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// expandAnys replaces the nested Anys shown as bytes that this binary can
// render.
func expandAnys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["value_base64"].(string); ok {
			if r, err := anyJSON(x); err == nil {
				return r
			}
			return x
		}
		for k, e := range x {
			x[k] = expandAnys(e)
		}
	case []any:
		for i, e := range x {
			x[i] = expandAnys(e)
		}
	}
	return v
}

// resourceName is a resource's name: name, or clusterName for endpoints.
func resourceName(v any) string {
	obj, _ := v.(map[string]any)
	for _, k := range []string{"name", "clusterName", "cluster_name"} {
		if s, ok := obj[k].(string); ok {
			return s
		}
	}
	return ""
}

func indentJSON(v any) []string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return strings.Split(string(b), "\n")
}

// maxDiffLines bounds the lines shown for one differing resource.
const maxDiffLines = 40

// lineDiff shows where two renderings differ: the lines between their
// common head and tail, mastd's with "-" and the proxy's with "+", with
// one line of context before.
func lineDiff(a, b []string) string {
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	var lines []string
	if head > 0 {
		lines = append(lines, "  "+a[head-1])
	}
	for _, l := range a[head : len(a)-tail] {
		lines = append(lines, "- "+l)
	}
	for _, l := range b[head : len(b)-tail] {
		lines = append(lines, "+ "+l)
	}
	if len(lines) > maxDiffLines {
		lines = append(lines[:maxDiffLines], fmt.Sprintf("  ... %d more lines", len(lines)-maxDiffLines))
	}
	return strings.Join(lines, "\n")
}

// Write prints istioctl's verdict per section ("Clusters Match",
// "Listeners Don't Match") and, for a mismatch, what differs.
func Write(w io.Writer, diffs []Section) {
	for _, d := range diffs {
		if d.match() {
			fmt.Fprintf(w, "%s Match\n", d.Title)
			continue
		}
		fmt.Fprintf(w, "%s Don't Match (--- mastd would send, +++ the proxy has)\n", d.Title)
		for _, n := range d.OnlyMastd {
			fmt.Fprintf(w, "  - %s: mastd would send it; the proxy does not have it\n", n)
		}
		for _, n := range d.OnlyProxy {
			fmt.Fprintf(w, "  + %s: the proxy has it; mastd would not send it\n", n)
		}
		names := make([]string, 0, len(d.Differ))
		for n := range d.Differ {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  ~ %s differs:\n", n)
			for _, l := range strings.Split(d.Differ[n], "\n") {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
}
