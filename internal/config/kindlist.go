package config

import (
	"slices"
	"strings"
	"sync/atomic"
)

// NamespaceResources are the resources of one kind and namespace, sorted by
// name.
type NamespaceResources struct {
	Namespace string
	Resources []Resource
}

// kindList is one kind's resources in a snapshot: one list per namespace,
// so that Update copies the namespaces it touches and shares the others
// with the snapshot it came from. Immutable once made.
type kindList struct {
	segs []NamespaceResources // sorted by namespace, none empty
	n    int
	flat atomic.Pointer[[]Resource] // segs concatenated, made on first use
}

// newKindList holds list, sorted by namespace and name; its namespaces are
// sub-slices of list, which is also the concatenation List returns.
func newKindList(list []Resource) *kindList {
	l := &kindList{n: len(list)}
	for i := 0; i < len(list); {
		j := i + 1
		for j < len(list) && list[j].Namespace == list[i].Namespace {
			j++
		}
		l.segs = append(l.segs, NamespaceResources{Namespace: list[i].Namespace, Resources: list[i:j:j]})
		i = j
	}
	l.flat.Store(&list)
	return l
}

// list returns the kind's resources, sorted by namespace and name.
func (l *kindList) list() []Resource {
	if l == nil {
		return nil
	}
	if p := l.flat.Load(); p != nil {
		return *p
	}
	out := make([]Resource, 0, l.n)
	for _, s := range l.segs {
		out = append(out, s.Resources...)
	}
	l.flat.Store(&out) // a concurrent caller may store an equal list: either is right
	return out
}

// InNamespace returns the resources of namespace ns in segs (sorted by
// namespace, as ByNamespace returns them).
func InNamespace(segs []NamespaceResources, ns string) []Resource {
	if i, found := findNamespace(segs, ns); found {
		return segs[i].Resources
	}
	return nil
}

func findNamespace(segs []NamespaceResources, ns string) (int, bool) {
	return slices.BinarySearchFunc(segs, ns, func(s NamespaceResources, ns string) int { return strings.Compare(s.Namespace, ns) })
}

// SameResources reports whether a and b are the same list (the same
// elements of the same backing array), as the namespaces of two snapshots
// are when Update did not touch them; it does not compare contents.
func SameResources(a, b []Resource) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// update returns l (nil: empty) with the resources of put added or replaced
// and the keys of del removed, all of l's kind; put holds each key once.
// Only the namespaces put and del name are copied.
func (l *kindList) update(put []Resource, del []Key) *kindList {
	var segs []NamespaceResources
	if l != nil {
		segs = slices.Clone(l.segs)
	}
	byNS := map[string]struct{}{}
	for _, k := range del {
		byNS[k.Namespace] = struct{}{}
	}
	for _, r := range put {
		byNS[r.Namespace] = struct{}{}
	}
	for ns := range byNS {
		i, found := findNamespace(segs, ns)
		var list []Resource
		if found {
			list = slices.Clone(segs[i].Resources)
		}
		list = patch(list, ns, put, del)
		switch {
		case len(list) == 0 && found:
			segs = slices.Delete(segs, i, i+1)
		case len(list) == 0:
		case found:
			segs[i].Resources = list
		default:
			segs = slices.Insert(segs, i, NamespaceResources{Namespace: ns, Resources: list})
		}
	}
	out := &kindList{segs: segs}
	for _, s := range segs {
		out.n += len(s.Resources)
	}
	return out
}

// patch applies the puts and deletes of namespace ns to list (a copy the
// caller owns, sorted by name): deleted keys are removed, put ones replace
// those with their key or are inserted in order.
func patch(list []Resource, ns string, put []Resource, del []Key) []Resource {
	for _, k := range del {
		if k.Namespace != ns {
			continue
		}
		if i, found := slices.BinarySearchFunc(list, k, compareToKey); found {
			list = slices.Delete(list, i, i+1)
		}
	}
	var fresh []Resource // new keys, once each
	for _, r := range put {
		if r.Namespace != ns {
			continue
		}
		if j, found := slices.BinarySearchFunc(list, r.Key(), compareToKey); found {
			list[j] = r
			continue
		}
		fresh = append(fresh, r)
	}
	if len(fresh) > 32 {
		list = append(list, fresh...)
		slices.SortFunc(list, compareNamespaceName)
		return list
	}
	for _, r := range fresh {
		i, _ := slices.BinarySearchFunc(list, r, compareNamespaceName)
		list = slices.Insert(list, i, r)
	}
	return list
}

// ChangedNamespaces walks two lists of one kind by namespace (sorted by
// namespace, as ByNamespace returns them) side by side and calls f with
// each namespace's old and new resources (nil where a list lacks the
// namespace), skipping the namespaces both hold as the same list
// (SameResources: the update that made new did not touch them).
func ChangedNamespaces(old, new []NamespaceResources, f func(old, new []Resource)) {
	for i, j := 0, 0; i < len(old) || j < len(new); {
		c := 0
		switch {
		case i == len(old):
			c = 1
		case j == len(new):
			c = -1
		default:
			c = strings.Compare(old[i].Namespace, new[j].Namespace)
		}
		switch {
		case c < 0:
			f(old[i].Resources, nil)
			i++
		case c > 0:
			f(nil, new[j].Resources)
			j++
		default:
			if !SameResources(old[i].Resources, new[j].Resources) {
				f(old[i].Resources, new[j].Resources)
			}
			i++
			j++
		}
	}
}
