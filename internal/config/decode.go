package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode parses every document in data, read from file: YAML (several
// documents separated by "---"), JSON, or a Kubernetes "kind: List" holding
// items. Each document must be one of the kinds Mast understands (see Kinds)
// under one of its apiVersions. The namespace defaults to "default".
//
// Decoding is strict: an unknown field, a value of the wrong type, a missing
// required field, an unknown enum value, an unknown kind or apiVersion, or
// malformed YAML is an error naming the file, the line, the resource and the
// field path. The returned error, when not nil, is a Problems.
//
// A bad document does not hide good ones: Decode returns every resource that
// decoded without errors, together with the problems of the others.
// Decode does no semantic validation; see Validate and Load.
func Decode(file string, data []byte) ([]Resource, error) {
	rs, ps := decodeFile(file, data)
	if len(ps) > 0 {
		return rs, ps
	}
	return rs, nil
}

// maxNodes bounds the work spent on one document, so that YAML alias bombs
// ("billion laughs") are rejected instead of exhausting memory.
const maxNodes = 1 << 18

func decodeFile(file string, data []byte) ([]Resource, Problems) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var out []Resource
	var probs Problems
	for _, doc := range splitDocuments(data) {
		var root yaml.Node
		if err := yaml.Unmarshal(doc.data, &root); err != nil {
			line, msg := yamlErrorLine(err)
			probs = append(probs, Problem{Severity: Error, Source: Source{File: file, Line: doc.line + max(line, 1) - 1},
				Resource: guessKey(doc.data), Message: "malformed YAML: " + msg})
			continue
		}
		if root.Kind == 0 || len(root.Content) == 0 {
			continue // empty document (comments only)
		}
		budget := maxNodes
		d := &decoder{file: file, lineOff: doc.line - 1, budget: &budget, sizeHint: len(doc.data)}
		n := d.deref(root.Content[0])
		if n == nil || isNull(n) {
			continue
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, "document is %s, want an object with apiVersion, kind, metadata and spec", describe(n))
			probs = append(probs, d.probs...)
			continue
		}
		if scalarField(n, "kind") == "List" && !strings.Contains(scalarField(n, "apiVersion"), ".istio.io/") {
			rs, ps := d.list(n)
			out = append(out, rs...)
			probs = append(probs, ps...)
			continue
		}
		if r, ok := d.object(n); ok {
			out = append(out, r)
		}
		probs = append(probs, d.probs...)
	}
	return out, probs
}

type document struct {
	data []byte
	line int // 1-based line of the document's first line in the file
}

// splitDocuments cuts a YAML stream at "---" lines, remembering where each
// document starts, so that a malformed document does not stop the others.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine, line := 0, 1, 1
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		if end >= 0 {
			next = i + end + 1
		}
		if i > start && isDocumentMarker(data[i:next]) {
			docs = append(docs, document{data: data[start:i], line: startLine})
			start, startLine = i, line
		}
		i = next
		line++
	}
	if start < len(data) {
		docs = append(docs, document{data: data[start:], line: startLine})
	}
	return docs
}

func isDocumentMarker(l []byte) bool {
	if !bytes.HasPrefix(l, []byte("---")) {
		return false
	}
	return len(l) == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\n' || l[3] == '\r'
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

var (
	guessKindRE = regexp.MustCompile(`(?m)^kind:[ \t]*["']?([A-Za-z0-9]+)`)
	guessAPIRE  = regexp.MustCompile(`(?m)^apiVersion:[ \t]*["']?([a-z0-9./]+)`)
	guessNameRE = regexp.MustCompile(`(?m)^[ \t]+name:[ \t]*["']?([a-z0-9.-]+)`)
	guessNSRE   = regexp.MustCompile(`(?m)^[ \t]+namespace:[ \t]*["']?([a-z0-9-]+)`)
)

// guessKey identifies, as well as it can, the resource of a document that is
// not valid YAML, so that the problem can still name it.
func guessKey(doc []byte) Key {
	var k Key
	if m := guessKindRE.FindSubmatch(doc); m != nil {
		k.Kind.Kind = string(m[1])
	}
	if k.Kind.Kind == "" {
		return Key{}
	}
	if m := guessAPIRE.FindSubmatch(doc); m != nil {
		k.Kind.Group, _, _ = strings.Cut(string(m[1]), "/")
	}
	if md := bytes.Index(doc, []byte("\nmetadata:")); md >= 0 {
		meta := doc[md:]
		if m := guessNameRE.FindSubmatch(meta); m != nil {
			k.Name = string(m[1])
		}
		if m := guessNSRE.FindSubmatch(meta); m != nil {
			k.Namespace = string(m[1])
		}
	}
	if k.Namespace == "" {
		k.Namespace = "default"
	}
	return k
}

// list decodes the items of a Kubernetes List document.
func (d *decoder) list(n *yaml.Node) ([]Resource, Problems) {
	var out []Resource
	var probs Problems
	d.forEachPair(n, func(k, v *yaml.Node) {
		switch k.Value {
		case "apiVersion", "kind", "metadata":
		case "items":
			v = d.deref(v)
			if v.Kind != yaml.SequenceNode {
				if !isNull(v) {
					d.path = append(d.path[:0], "items"...)
					d.fail(v, "want a list of resources, got %s", describe(v))
				}
				return
			}
			for _, item := range v.Content {
				id := &decoder{file: d.file, lineOff: d.lineOff, budget: d.budget}
				item = id.deref(item)
				if item.Kind != yaml.MappingNode {
					id.fail(item, "list item is %s, want an object with apiVersion, kind, metadata and spec", describe(item))
				} else if r, ok := id.object(item); ok {
					out = append(out, r)
				}
				probs = append(probs, id.probs...)
			}
		default:
			d.path = append(d.path[:0], k.Value...)
			d.fail(k, "unknown field %q in List", k.Value)
		}
	})
	return out, append(probs, d.probs...)
}

// topLevelFields are the fields a resource document may have.
var topLevelFields = []string{"apiVersion", "kind", "metadata", "spec", "status"}

// object decodes one resource document. It reports whether the resource
// decoded without errors.
func (d *decoder) object(n *yaml.Node) (Resource, bool) {
	apiVersion, kind := scalarField(n, "apiVersion"), scalarField(n, "kind")
	var r Resource
	r.APIVersion = apiVersion
	r.Source = Source{File: d.file, Line: d.line(n)}
	r.Namespace = "default"
	if md := mappingField(d, n, "metadata"); md != nil {
		r.Name = scalarField(md, "name")
		if ns := scalarField(md, "namespace"); ns != "" {
			r.Namespace = ns
		}
	}
	group, _, _ := strings.Cut(apiVersion, "/")
	r.Kind = Kind{Group: group, Kind: kind}
	d.res = r.Key()

	var sch *schema
	switch {
	case kind == "":
		d.fail(n, "missing kind")
	case apiVersion == "":
		d.fail(n, "missing apiVersion")
	default:
		var msg string
		if sch, msg = lookupSchema(apiVersion, kind); sch == nil {
			d.path = append(d.path[:0], "kind"...)
			d.fail(nodeOf(n, "kind", n), "%s", msg)
			d.path = d.path[:0]
		} else {
			r.Kind = sch.kind
			d.res = r.Key()
		}
	}
	errorsBefore := len(d.probs)
	d.pos = &Positions{entries: make([]posEntry, 0, 16+d.sizeHint/24)}
	var spec *yaml.Node
	seen := make([]string, 0, 5)
	d.forEachPair(n, func(k, v *yaml.Node) {
		name := k.Value
		d.path = append(d.path[:0], name...)
		defer func() { d.path = d.path[:0] }()
		if !contains(topLevelFields, name) {
			d.fail(k, "unknown field %q%s", name, suggest(name, topLevelFields))
			return
		}
		if contains(seen, name) {
			d.fail(k, "duplicate field %q", name)
			return
		}
		seen = append(seen, name)
		idx := d.pos.add(-1, d.line(k), name, -1, false)
		switch name {
		case "apiVersion", "kind":
			if v = d.deref(v); v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
				d.fail(v, "want a string, got %s", describe(v))
			}
		case "metadata":
			d.metadata(v, &r.Meta, idx)
		case "spec":
			spec = v
		case "status": // written by controllers; ignored
		}
	})
	if d.res.Name == "" && !hasErrorAt(d.probs[errorsBefore:], "metadata") {
		d.path = append(d.path[:0], "metadata.name"...)
		d.fail(nodeOf(n, "metadata", n), "missing required field \"name\"")
		d.path = d.path[:0]
	}
	if sch == nil {
		return Resource{}, false
	}
	r.Spec = NewSpec(sch.kind)
	if spec != nil && !isNull(d.deref(spec)) {
		idx := int32(-1)
		for i, e := range d.pos.entries {
			if e.parent == -1 && e.name == "spec" {
				idx = int32(i)
			}
		}
		d.path = append(d.path[:0], "spec"...)
		d.message(spec, r.Spec.ProtoReflect(), idx)
		d.path = d.path[:0]
	}
	if len(d.probs) > 0 {
		return Resource{}, false
	}
	r.Positions = d.pos
	return r, true
}

func hasErrorAt(ps Problems, prefix string) bool {
	for _, p := range ps {
		if strings.HasPrefix(p.Field, prefix) {
			return true
		}
	}
	return false
}

// metadataIgnored are Kubernetes metadata fields accepted and ignored (they
// appear in output of kubectl get -o yaml).
var metadataIgnored = []string{"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
	"deletionGracePeriodSeconds", "generateName", "ownerReferences", "finalizers", "managedFields", "selfLink"}

var metadataFields = append([]string{"name", "namespace", "labels", "annotations"}, metadataIgnored...)

func (d *decoder) metadata(n *yaml.Node, m *Meta, parent int32) {
	n = d.deref(n)
	if n.Kind != yaml.MappingNode {
		d.fail(n, "want an object, got %s", describe(n))
		return
	}
	d.forEachPair(n, func(k, v *yaml.Node) {
		mark := d.pushField(k.Value)
		defer d.pop(mark)
		if !contains(metadataFields, k.Value) {
			d.fail(k, "unknown field %q%s", k.Value, suggest(k.Value, metadataFields))
			return
		}
		idx := d.pos.add(parent, d.line(k), k.Value, -1, false)
		switch k.Value {
		case "name", "namespace":
			if v = d.deref(v); v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
				d.fail(v, "want a string, got %s", describe(v))
			}
		case "labels":
			m.Labels = d.stringMap(v, idx)
		case "annotations":
			m.Annotations = d.stringMap(v, idx)
		}
	})
}

func (d *decoder) stringMap(n *yaml.Node, parent int32) map[string]string {
	n = d.deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, "want an object of strings, got %s", describe(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	d.forEachPair(n, func(k, v *yaml.Node) {
		mark := d.pushKey(k.Value)
		defer d.pop(mark)
		d.pos.add(parent, d.line(k), k.Value, -1, true)
		if _, dup := out[k.Value]; dup {
			d.fail(k, "duplicate key %q", k.Value)
			return
		}
		v = d.deref(v)
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			d.fail(v, "want a string, got %s (quote it)", describe(v))
			return
		}
		out[k.Value] = v.Value
	})
	return out
}

// scalarField returns the string value of key in mapping n, or "".
func scalarField(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := n.Content[i+1]
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			if v.Kind == yaml.ScalarNode {
				return v.Value
			}
		}
	}
	return ""
}

// mappingField returns the mapping value of key in mapping n, or nil.
func mappingField(d *decoder, n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			if v := d.deref(n.Content[i+1]); v != nil && v.Kind == yaml.MappingNode {
				return v
			}
		}
	}
	return nil
}

// nodeOf returns the key node of key in mapping n, or def.
func nodeOf(n *yaml.Node, key string, def *yaml.Node) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return def
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var errBudget = errors.New("document too large or too deeply aliased")

// describe names the YAML type of a node for error messages.
func describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "boolean " + v
		case "!!int", "!!float":
			return "number " + v
		}
		return fmt.Sprintf("string %q", v)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty value"
}
