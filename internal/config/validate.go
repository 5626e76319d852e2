package config

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/mixer/api/policypb"

	networking "istio.io/api/networking/v1alpha3"
	networkingbeta "istio.io/api/networking/v1beta1"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/mast-mesh/mast/internal/ratelimit/ratelimitpb"
)

// Validate checks one resource against Istio's semantic rules (those of
// istio/istio pkg/config/validation, and some stricter ones): hosts and
// wildcards, route weights, regular expressions, durations, ports,
// percentages, mutually exclusive fields, TLS settings, and so on. It returns
// errors and warnings; warnings do not make the resource invalid. Lines point
// at the offending field when the resource was decoded from a file.
func Validate(r Resource) Problems {
	v := &validator{r: &r}
	v.meta()
	dr, _ := r.Spec.(*networking.DestinationRule)
	v.mastAnnotations(dr.GetTrafficPolicy().GetOutlierDetection() != nil)
	switch spec := r.Spec.(type) {
	case nil:
		v.errorf("spec", "missing spec")
	case *policypb.Handler, *policypb.Instance, *policypb.Rule, *policypb.AttributeManifest,
		*clientpb.QuotaSpec, *clientpb.QuotaSpecBinding, *structpb.Struct:
		v.mixer()
	case *networking.VirtualService:
		v.virtualService(spec)
	case *networking.DestinationRule:
		v.destinationRule(spec)
	case *networking.Gateway:
		v.gateway(spec)
	case *networking.ServiceEntry:
		v.serviceEntry(spec)
	case *networking.Sidecar:
		v.sidecar(spec)
	case *networking.WorkloadEntry:
		v.workloadEntry("spec", spec, nil, true)
	case *networking.WorkloadGroup:
		v.workloadGroup(spec)
	case *security.PeerAuthentication:
		v.peerAuthentication(spec)
	case *security.RequestAuthentication:
		v.requestAuthentication(spec)
	case *security.AuthorizationPolicy:
		v.authorizationPolicy(spec)
	case *telemetry.Telemetry:
		v.telemetry(spec)
	case *ratelimitpb.RateLimit:
		v.rateLimit(spec)
	case *networking.EnvoyFilter:
		v.envoyFilter(spec)
	case *networkingbeta.ProxyConfig:
		// read so that it is reported, not refused: every field warns below
	default:
		v.errorf("spec", "unsupported spec type %T for kind %s", spec, r.Kind)
	}
	v.warnUnsupported()
	return v.probs
}

// validator collects the problems of one resource.
type validator struct {
	r     *Resource
	probs Problems
}

func (v *validator) errorf(field, format string, args ...any) {
	v.probs = append(v.probs, problemf(Error, v.r, field, format, args...))
}

func (v *validator) warnf(field, format string, args ...any) {
	v.probs = append(v.probs, problemf(Warning, v.r, field, format, args...))
}

// check records err, if any, as an error at field.
func (v *validator) check(field string, err error) {
	if err != nil {
		v.errorf(field, "%s", err.Error())
	}
}

func (v *validator) meta() {
	r := v.r
	switch {
	case r.Name == "":
		v.errorf("metadata.name", "name is required")
	case r.Kind == Gateway:
		// Gateways are referenced as namespace/name, so the name must be a DNS label.
		if !isDNSLabel(r.Name, false) {
			v.errorf("metadata.name", "invalid gateway name %q: must be a DNS label (lower case letters, digits and '-')", r.Name)
		}
	case !isDNSSubdomain(r.Name):
		v.errorf("metadata.name", "invalid name %q: must be a DNS subdomain (lower case letters, digits, '-' and '.')", r.Name)
	}
	if !isDNSLabel(r.Namespace, false) {
		v.errorf("metadata.namespace", "invalid namespace %q: must be a DNS label", r.Namespace)
	}
	v.labels("metadata.labels", r.Labels)
	for k := range r.Annotations {
		if err := validateQualifiedName(k); err != nil {
			v.errorf(pathKey("metadata.annotations", k), "invalid annotation key: %v", err)
		}
	}
	if _, ok := r.Annotations["istio.io/dry-run"]; ok && r.Kind != AuthorizationPolicy {
		v.errorf(pathKey("metadata.annotations", "istio.io/dry-run"), "annotation istio.io/dry-run is only supported on AuthorizationPolicy")
	}
}

// labels validates a label map (keys and values by Kubernetes rules).
func (v *validator) labels(field string, labels map[string]string) {
	for k, val := range labels {
		if err := validateQualifiedName(k); err != nil {
			v.errorf(pathKey(field, k), "invalid label key: %v", err)
		}
		if err := validateLabelValue(val); err != nil {
			v.errorf(pathKey(field, k), "invalid label value: %v", err)
		}
	}
}

// selectorLabels validates a workload selector's labels: no empty keys and
// no wildcards; an empty selector is a warning.
func (v *validator) selectorLabels(field string, labels map[string]string, present bool) {
	if !present {
		return
	}
	if len(labels) == 0 {
		v.warnf(field, "workload selector specified without labels; it selects every workload in the namespace")
	}
	for k, val := range labels {
		if k == "" {
			v.errorf(field, "empty key is not supported in selector: %q", k+"="+val)
		}
		if strings.Contains(k, "*") || strings.Contains(val, "*") {
			v.errorf(pathKey(field, k), "wildcard is not supported in selector: %q", k+"="+val)
		}
	}
	v.labels(field, labels)
}

// exportTo validates an exportTo list.
func (v *validator) exportTo(field string, exportTo []string, isServiceEntry, isDRWithSelector bool) {
	if len(exportTo) == 0 {
		return
	}
	ns := v.r.Namespace
	set := map[string]bool{}
	for i, e := range exportTo {
		f := pathIndex(field, i)
		key := e
		if e == "." {
			key = ns
		}
		if set[key] {
			if key != e {
				v.errorf(f, "duplicate entries in exportTo: . and current namespace %s", ns)
			} else {
				v.errorf(f, "duplicate entries in exportTo for entry %s", e)
			}
			continue
		}
		switch {
		case e == "~" && isServiceEntry, e == "*", e == ".":
		case e == "~":
			v.errorf(f, "exportTo %q is only allowed on ServiceEntry", e)
			continue
		case !isDNSLabel(e, false):
			v.errorf(f, "invalid exportTo value %q: want \".\", \"*\" or a namespace", e)
			continue
		}
		set[key] = true
	}
	if isDRWithSelector && len(set) > 0 {
		if !set[ns] {
			v.errorf(field, "destination rule with workload selector cannot have exportTo beyond current namespace")
		} else if len(set) > 1 {
			v.errorf(field, "destination rule with workload selector cannot have multiple entries in exportTo")
		}
	}
	if set["*"] && len(exportTo) > 1 {
		v.errorf(field, "cannot have both public (*) and non-public exportTo values for a resource")
	}
	if set["~"] && len(exportTo) > 1 {
		v.errorf(field, "cannot export service entry to no one (~) and someone")
	}
}

// errf is a short fmt.Errorf for the helpers.
func errf(format string, args ...any) error { return fmt.Errorf(format, args...) }
