package config

import (
	"sort"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/adapters"
	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/mixer/api/policypb"
	"github.com/mast-mesh/mast/internal/mixer/template"
)

// MixerGroup is the API group of Istio's Mixer-era policy kinds
// (config.istio.io/v1alpha2).
const MixerGroup = "config.istio.io"

// The Mixer kinds with a schema of their own.
var (
	MixerHandler           = Kind{MixerGroup, "handler"}
	MixerInstance          = Kind{MixerGroup, "instance"}
	MixerRule              = Kind{MixerGroup, "rule"}
	MixerAttributeManifest = Kind{MixerGroup, "attributemanifest"}
	QuotaSpec              = Kind{MixerGroup, "QuotaSpec"}
	QuotaSpecBinding       = Kind{MixerGroup, "QuotaSpecBinding"}
)

var mixerVersions = []string{"v1alpha2"}

// mixerSchemas are the Mixer kinds: handler, instance, rule,
// attributemanifest, QuotaSpec, QuotaSpecBinding, and one kind per
// compiled adapter (denier, listchecker, memquota, ...) and per template
// (checknothing, listentry, quota, ...), the older form Istio's *-crd.yaml
// samples use, whose spec is the adapter's or template's params.
func mixerSchemas() []schema {
	out := []schema{
		{MixerHandler, mixerVersions, (*policypb.Handler)(nil)},
		{MixerInstance, mixerVersions, (*policypb.Instance)(nil)},
		{MixerRule, mixerVersions, (*policypb.Rule)(nil)},
		{MixerAttributeManifest, mixerVersions, (*policypb.AttributeManifest)(nil)},
		{QuotaSpec, mixerVersions, (*clientpb.QuotaSpec)(nil)},
		{QuotaSpecBinding, mixerVersions, (*clientpb.QuotaSpecBinding)(nil)},
	}
	for _, n := range MixerAdapterKinds() {
		out = append(out, schema{Kind{MixerGroup, n}, mixerVersions, (*structpb.Struct)(nil)})
	}
	for _, n := range MixerTemplateKinds() {
		out = append(out, schema{Kind{MixerGroup, n}, mixerVersions, (*structpb.Struct)(nil)})
	}
	return out
}

// MixerAdapterKinds are the per-adapter kinds (a handler of that adapter).
func MixerAdapterKinds() []string { return adapters.Names() }

// MixerTemplateKinds are the per-template kinds (an instance of that template).
func MixerTemplateKinds() []string { return template.Names() }

// IsMixerKind reports whether k is one of the Mixer kinds.
func IsMixerKind(k Kind) bool { return k.Group == MixerGroup }

// MixerKinds returns every Mixer kind, sorted by name.
func MixerKinds() []Kind {
	var out []Kind
	for _, s := range mixerSchemas() {
		out = append(out, s.kind)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}
