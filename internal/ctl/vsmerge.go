package ctl

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// mergedVS is the VirtualServices as mastd applies them: delegation merged
// by mastd's own function (model.MergeDelegates), with where each merged
// route comes from, so that a finding names the delegate's field when the
// route or the field is the delegate's.
type mergedVS struct {
	list    []config.Resource
	origins map[config.Key][]model.RouteOrigin
	snap    *config.Snapshot
}

func mergeVS(snap *config.Snapshot) mergedVS {
	list, origins := model.MergeDelegates(snap.List(config.VirtualService), "cluster.local")
	return mergedVS{list: list, origins: origins, snap: snap}
}

// at names the resource ("VirtualService ns/name") and field
// ("spec.http[i].FIELD") behind route i of the merged VirtualService vs.
// A delegated route's destinations and matches are the delegate's, and so
// is any other field the delegate's route sets; a field it leaves unset
// is inherited from the root's route.
func (m mergedVS) at(vs config.Resource, i int, field string) (resource, path string) {
	resource, path = "VirtualService "+vs.Namespace+"/"+vs.Name, fmt.Sprintf("spec.http[%d].%s", i, field)
	os := m.origins[vs.Key()]
	if i >= len(os) {
		return resource, path
	}
	o := os[i]
	rootAt := fmt.Sprintf("spec.http[%d].%s", o.RootIndex, field)
	if o.Delegate == (config.Key{}) {
		return resource, rootAt
	}
	d, ok := m.snap.Get(o.Delegate)
	if !ok {
		return resource, rootAt
	}
	routes := d.Spec.(*networking.VirtualService).GetHttp()
	if o.DelegateIndex >= len(routes) {
		return resource, rootAt
	}
	name, _, _ := strings.Cut(field, ".")
	name, _, _ = strings.Cut(name, "[")
	r := routes[o.DelegateIndex].ProtoReflect()
	if fd := r.Descriptor().Fields().ByJSONName(name); name == "route" || name == "match" || fd != nil && r.Has(fd) {
		return fmt.Sprintf("VirtualService %s/%s (delegate of %s/%s)", d.Namespace, d.Name, vs.Namespace, vs.Name),
			fmt.Sprintf("spec.http[%d].%s", o.DelegateIndex, field)
	}
	return resource, rootAt
}

// delegates lists the delegates merged into vs, as namespace/name.
func (m mergedVS) delegates(vs config.Resource) []string {
	var out []string
	seen := map[config.Key]bool{}
	for _, o := range m.origins[vs.Key()] {
		if o.Delegate != (config.Key{}) && !seen[o.Delegate] {
			seen[o.Delegate] = true
			out = append(out, o.Delegate.Namespace+"/"+o.Delegate.Name)
		}
	}
	return out
}
