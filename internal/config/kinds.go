package config

import (
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"
	networkingbeta "istio.io/api/networking/v1beta1"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/mast-mesh/mast/internal/ratelimit/ratelimitpb"
)

// schema describes one kind: the API versions accepted for it and its spec type.
type schema struct {
	kind     Kind
	versions []string // accepted versions; the first is the preferred one
	spec     proto.Message
}

var (
	networkingVersions = []string{"v1", "v1beta1", "v1alpha3"}
	securityVersions   = []string{"v1", "v1beta1"}
	telemetryVersions  = []string{"v1", "v1alpha1"}
)

// schemas is the fixed table of kinds Mast understands. It is never modified.
var schemas = append([]schema{
	{VirtualService, networkingVersions, (*networking.VirtualService)(nil)},
	{DestinationRule, networkingVersions, (*networking.DestinationRule)(nil)},
	{Gateway, networkingVersions, (*networking.Gateway)(nil)},
	{ServiceEntry, networkingVersions, (*networking.ServiceEntry)(nil)},
	{Sidecar, networkingVersions, (*networking.Sidecar)(nil)},
	{WorkloadEntry, networkingVersions, (*networking.WorkloadEntry)(nil)},
	{WorkloadGroup, networkingVersions, (*networking.WorkloadGroup)(nil)},
	{PeerAuthentication, securityVersions, (*security.PeerAuthentication)(nil)},
	{RequestAuthentication, securityVersions, (*security.RequestAuthentication)(nil)},
	{AuthorizationPolicy, securityVersions, (*security.AuthorizationPolicy)(nil)},
	{Telemetry, telemetryVersions, (*telemetry.Telemetry)(nil)},
	// Read and validated; validation warns that they are not applied yet.
	{ProxyConfig, []string{"v1beta1"}, (*networkingbeta.ProxyConfig)(nil)},
	{EnvoyFilter, []string{"v1alpha3"}, (*networking.EnvoyFilter)(nil)},
	// Mast's own kinds.
	{RateLimit, []string{"v1alpha1"}, (*ratelimitpb.RateLimit)(nil)},
}, mixerSchemas()...)

// Kinds returns every kind Mast understands, in a fixed order.
func Kinds() []Kind {
	out := make([]Kind, len(schemas))
	for i, s := range schemas {
		out[i] = s.kind
	}
	return out
}

// APIVersions returns the apiVersions ("networking.istio.io/v1", ...) accepted
// for k, the preferred one first; nil for an unknown kind.
func APIVersions(k Kind) []string {
	s := schemaOf(k)
	if s == nil {
		return nil
	}
	out := make([]string, len(s.versions))
	for i, v := range s.versions {
		out[i] = k.Group + "/" + v
	}
	return out
}

// NewSpec returns a new, empty spec message for kind k (for example
// *v1alpha3.VirtualService), or nil for an unknown kind.
func NewSpec(k Kind) proto.Message {
	s := schemaOf(k)
	if s == nil {
		return nil
	}
	return s.spec.ProtoReflect().New().Interface()
}

func schemaOf(k Kind) *schema {
	for i := range schemas {
		if schemas[i].kind == k {
			return &schemas[i]
		}
	}
	return nil
}

// lookupSchema finds the schema for a document's apiVersion and kind. It
// returns a problem message when either is unknown.
func lookupSchema(apiVersion, kind string) (*schema, string) {
	group, version, ok := strings.Cut(apiVersion, "/")
	if !ok {
		group, version = "", apiVersion
	}
	var byKind *schema
	for i := range schemas {
		s := &schemas[i]
		if s.kind.Kind != kind {
			continue
		}
		byKind = s
		if s.kind.Group == group && slices.Contains(s.versions, version) {
			return s, ""
		}
	}
	if byKind == nil {
		return nil, "unknown kind " + quote(kind) + " (apiVersion " + quote(apiVersion) + "); known kinds: " + knownKinds()
	}
	return nil, "unknown apiVersion " + quote(apiVersion) + " for kind " + kind + "; want one of " + strings.Join(APIVersions(byKind.kind), ", ")
}

func knownKinds() string {
	names := make([]string, len(schemas))
	for i, s := range schemas {
		names[i] = s.kind.Kind
	}
	return strings.Join(names, ", ")
}

// requiredFields lists, per message type, the fields the Istio API marks
// (google.api.field_behavior) = REQUIRED. Built once from the descriptors of
// the kinds above and never modified.
var requiredFields = buildRequiredFields()

func buildRequiredFields() map[protoreflect.FullName][]protoreflect.FieldDescriptor {
	out := map[protoreflect.FullName][]protoreflect.FieldDescriptor{}
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			if opts := fd.Options(); opts != nil {
				if fb, ok := proto.GetExtension(opts, annotations.E_FieldBehavior).([]annotations.FieldBehavior); ok &&
					slices.Contains(fb, annotations.FieldBehavior_REQUIRED) {
					out[md.FullName()] = append(out[md.FullName()], fd)
				}
			}
			if fd.IsMap() {
				if v := fd.MapValue(); v.Kind() == protoreflect.MessageKind {
					walk(v.Message())
				}
			} else if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
				walk(fd.Message())
			}
		}
	}
	for _, s := range schemas {
		walk(s.spec.ProtoReflect().Descriptor())
	}
	return out
}

func quote(s string) string { return `"` + s + `"` }
