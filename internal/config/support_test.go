package config

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// fieldUse is one field of a kind reached at a path ("spec.http[].mirrors").
type fieldUse struct {
	kind  string
	path  string
	fd    protoreflect.FieldDescriptor
	class fieldClass
	found bool
}

// walkKinds visits every field of every kind Mast reads, recursively, as
// istio.io/api's descriptors declare them. It does not descend below a
// Warned or NotApplicable field: the field covers its subtree.
func walkKinds(visit func(fieldUse)) {
	for _, s := range schemas {
		var walk func(md protoreflect.MessageDescriptor, path string, depth int)
		walk = func(md protoreflect.MessageDescriptor, path string, depth int) {
			fs := md.Fields()
			for i := 0; i < fs.Len(); i++ {
				fd := fs.Get(i)
				u := fieldUse{kind: s.kind.Kind, path: path + "." + fd.JSONName(), fd: fd}
				if fd.IsList() || fd.IsMap() {
					u.path += "[]"
				}
				u.class, u.found = classify(fd)
				visit(u)
				if !u.found || u.class.Support != Honoured {
					continue
				}
				if sub := subMessage(fd); sub != nil && depth < 20 {
					walk(sub, u.path, depth+1)
				}
			}
		}
		walk(s.spec.ProtoReflect().Descriptor(), "spec", 0)
	}
}

func TestSupportTableCoversEveryField(t *testing.T) {
	walkKinds(func(u fieldUse) {
		if !u.found {
			t.Errorf("%s %s (%s): in no row of supportTable; say whether Mast honours it, warns about it, or why it does not apply",
				u.kind, u.path, u.fd.FullName())
		}
	})
	// Every row names real fields, once.
	known := map[string]bool{}
	for _, s := range schemas {
		var walk func(md protoreflect.MessageDescriptor)
		walk = func(md protoreflect.MessageDescriptor) {
			key := strings.TrimPrefix(string(md.FullName()), "istio.")
			if known[key] {
				return
			}
			known[key] = true
			fs := md.Fields()
			for i := 0; i < fs.Len(); i++ {
				known[key+"."+fs.Get(i).JSONName()] = true
				if sub := subMessage(fs.Get(i)); sub != nil {
					walk(sub)
				}
			}
		}
		walk(s.spec.ProtoReflect().Descriptor())
	}
	seen := map[string]bool{}
	for _, r := range supportTable {
		if !known[r.Message] {
			t.Errorf("supportTable: message %s is not part of any kind", r.Message)
		}
		if r.Support == NotApplicable && r.Note == "" {
			t.Errorf("supportTable: %s %s: not applicable without a reason", r.Message, r.Fields)
		}
		for _, f := range strings.Fields(r.Fields) {
			k := r.Message + "." + f
			if !known[k] {
				t.Errorf("supportTable: %s: no such field", k)
			}
			if seen[k] {
				t.Errorf("supportTable: %s: classified twice", k)
			}
			seen[k] = true
		}
	}
}

func TestValidationWarnsForFieldsNotHonoured(t *testing.T) {
	vs := &networking.VirtualService{
		Hosts: []string{"reviews"},
		Http: []*networking.HTTPRoute{{
			Route:   []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "reviews"}}},
			Retries: &networking.HTTPRetry{Attempts: 1, RetryRemoteLocalities: wrapperspb.Bool(true)},
			Match:   []*networking.HTTPMatchRequest{{StatPrefix: "x"}},
		}},
		Tcp: []*networking.TCPRoute{{
			Match: []*networking.L4MatchAttributes{{DestinationSubnets: []string{"10.0.0.0/8"}, SourceSubnet: "10.1.0.0/16"}},
			Route: []*networking.RouteDestination{{Destination: &networking.Destination{Host: "reviews", Port: &networking.PortSelector{Number: 9080}}}},
		}},
	}
	// statPrefix and the TCP subnets are honoured: no warning for them.
	r := Resource{Meta: Meta{Kind: VirtualService, Name: "reviews", Namespace: "default"}, Spec: vs}
	if ws := Validate(r).Warnings(); len(ws) != 0 {
		t.Errorf("honoured fields warned: %v", ws)
	}

	// EnvoyFilter's listener portName is reserved in the API and matched by
	// nobody: warned.
	ef := &networking.EnvoyFilter{ConfigPatches: []*networking.EnvoyFilter_EnvoyConfigObjectPatch{{
		ApplyTo: networking.EnvoyFilter_LISTENER,
		Match: &networking.EnvoyFilter_EnvoyConfigObjectMatch{ObjectTypes: &networking.EnvoyFilter_EnvoyConfigObjectMatch_Listener{
			Listener: &networking.EnvoyFilter_ListenerMatch{PortName: "http"},
		}},
		Patch: &networking.EnvoyFilter_Patch{Operation: networking.EnvoyFilter_Patch_REMOVE},
	}}}
	r = Resource{Meta: Meta{Kind: EnvoyFilter, Name: "f", Namespace: "default"}, Spec: ef}
	ws := Validate(r).Warnings()
	const want = "spec.configPatches[0].match.listener.portName"
	if len(ws) != 1 || ws[0].Field != want || !strings.HasPrefix(ws[0].Message, "not honoured by Mast") {
		t.Errorf("warnings %v, want one at %s naming the field as not honoured", ws, want)
	}
}

// supportCounts counts the fields of every kind (one per message field,
// shared messages counted once) by support.
func supportCounts() map[Support]int {
	counts := map[Support]int{}
	seen := map[protoreflect.FullName]bool{}
	walkKinds(func(u fieldUse) {
		if seen[u.fd.FullName()] {
			return
		}
		seen[u.fd.FullName()] = true
		counts[u.class.Support]++
	})
	return counts
}

// renderReadmeFields renders the README's generated section: per kind, how
// many fields are honoured and which are warned about.
func renderReadmeFields() string {
	type kindInfo struct {
		honoured, warned, na int
		warnedNames          []string
	}
	infos := map[string]*kindInfo{}
	var order []string
	seen := map[string]map[protoreflect.FullName]bool{}
	walkKinds(func(u fieldUse) {
		ki := infos[u.kind]
		if ki == nil {
			ki = &kindInfo{}
			infos[u.kind] = ki
			order = append(order, u.kind)
			seen[u.kind] = map[protoreflect.FullName]bool{}
		}
		if seen[u.kind][u.fd.FullName()] {
			return
		}
		seen[u.kind][u.fd.FullName()] = true
		switch u.class.Support {
		case Honoured:
			ki.honoured++
		case Warned:
			ki.warned++
			ki.warnedNames = append(ki.warnedNames, shortField(u.fd))
		case NotApplicable:
			ki.na++
		}
	})
	var b strings.Builder
	b.WriteString("<!-- BEGIN generated by `go test ./internal/config -run TestReadmeFieldTable -update`; edit supportTable in internal/config/support.go -->\n")
	b.WriteString("Every field of every kind is honoured, warned about by validation (`mast validate`, mastd) when set, or not\n")
	b.WriteString("applicable; `docs/fields.md` lists them all with the reasons.\n\n")
	b.WriteString("| kind | fields honoured | not honoured yet: validation warns when set |\n|---|---|---|\n")
	for _, k := range order {
		ki := infos[k]
		total := ki.honoured + ki.warned + ki.na
		if ki.honoured+ki.warned == 0 {
			continue // Mixer's per-adapter and per-template kinds: params checked by the Mixer's validation
		}
		w := "—"
		if len(ki.warnedNames) > 0 {
			sort.Strings(ki.warnedNames)
			w = "`" + strings.Join(ki.warnedNames, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| %s | %d of %d | %s |\n", k, ki.honoured, total, w)
	}
	b.WriteString("<!-- END generated -->\n")
	return b.String()
}

// shortField names a field by its innermost message and JSON name: "HTTPRoute.mirrors".
func shortField(fd protoreflect.FieldDescriptor) string {
	return string(fd.ContainingMessage().Name()) + "." + fd.JSONName()
}

// renderFieldsDoc renders docs/fields.md: every field path of every kind.
func renderFieldsDoc() string {
	var b strings.Builder
	b.WriteString("# Istio fields in Mast\n\n")
	b.WriteString("Generated by `go test ./internal/config -run TestReadmeFieldTable -update` from `supportTable` in\n")
	b.WriteString("`internal/config/support.go`; do not edit. A field under a warned or not-applicable field shares its answer.\n\n")
	c := supportCounts()
	fmt.Fprintf(&b, "Fields (shared messages counted once): %d honoured, %d warned, %d not applicable.\n", c[Honoured], c[Warned], c[NotApplicable])
	kind := ""
	walkKinds(func(u fieldUse) {
		if u.kind != kind {
			kind = u.kind
			fmt.Fprintf(&b, "\n## %s\n\n| field | support | note |\n|---|---|---|\n", kind)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", u.path, u.class.Support, u.class.Note)
	})
	return b.String()
}

func TestReadmeFieldTable(t *testing.T) {
	const readme, doc = "../../README.md", "../../docs/fields.md"
	section := renderReadmeFields()
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(data, []byte("<!-- BEGIN generated by `go test ./internal/config -run TestReadmeFieldTable"))
	end := bytes.Index(data, []byte("<!-- END generated -->\n"))
	if start < 0 || end < start {
		t.Fatalf("%s: no generated field section (BEGIN/END markers)", readme)
	}
	end += len("<!-- END generated -->\n")
	docText := renderFieldsDoc()
	if *update {
		out := append(append(append([]byte(nil), data[:start]...), section...), data[end:]...)
		if err := os.WriteFile(readme, out, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(doc, []byte(docText), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := string(data[start:end]); got != section {
		t.Errorf("%s: the field section is stale; run go test ./internal/config -run TestReadmeFieldTable -update\n--- want\n%s", readme, section)
	}
	if got, err := os.ReadFile(doc); err != nil || string(got) != docText {
		t.Errorf("%s is stale or missing (%v); run go test ./internal/config -run TestReadmeFieldTable -update", doc, err)
	}
}

func TestValidationWarnsForHeaderCommandOperators(t *testing.T) {
	vs := &networking.VirtualService{
		Hosts: []string{"reviews"},
		Http: []*networking.HTTPRoute{{
			Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "reviews"}}},
			Headers: &networking.Headers{Request: &networking.Headers_HeaderOperations{Set: map[string]string{
				"x-client": "%DOWNSTREAM_REMOTE_ADDRESS%", "x-literal": "100%%", "x-version": "%UPSTREAM_METADATA(istio:version)%"}}},
		}},
	}
	// Operators mast-proxy expands are honoured; others are warned by name.
	ws := Validate(Resource{Meta: Meta{Kind: VirtualService, Name: "reviews", Namespace: "default"}, Spec: vs}).Warnings()
	if len(ws) != 1 || ws[0].Field != "spec.http[0].headers.request.set[x-version]" || !strings.Contains(ws[0].Message, "%UPSTREAM_METADATA%") {
		t.Errorf("warnings %v, want one at spec.http[0].headers.request.set[x-version] naming %%UPSTREAM_METADATA%%", ws)
	}
}
