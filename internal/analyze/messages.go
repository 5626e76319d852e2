package analyze

import (
	"fmt"
	"strings"
)

// Level is a message's severity, as Istio names it.
type Level int

// Levels, least severe first.
const (
	Info Level = iota
	Warning
	Error
)

func (l Level) String() string {
	switch l {
	case Error:
		return "Error"
	case Warning:
		return "Warning"
	}
	return "Info"
}

// ParseLevel parses "info", "warning" or "error" (any case).
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "info":
		return Info, nil
	case "warning", "warn":
		return Warning, nil
	case "error":
		return Error, nil
	}
	return 0, fmt.Errorf("unknown level %q (want info, warning or error)", s)
}

// MessageType is one kind of finding: Istio's code, name, level and template
// (from istio/istio pkg/config/analysis/msg/messages.yaml).
type MessageType struct {
	Code     string
	Name     string
	Level    Level
	Template string
}

// The message types Mast's analyzers report. Codes, levels and templates are
// Istio's, so tooling written for istioctl analyze reads them unchanged.
var (
	ReferencedResourceNotFound                       = MessageType{"IST0101", "ReferencedResourceNotFound", Error, "Referenced %s not found: %q"}
	NamespaceNotInjected                             = MessageType{"IST0102", "NamespaceNotInjected", Info, "The namespace is not enabled for Istio injection. Run 'kubectl label namespace %s istio-injection=enabled' to enable it, or 'kubectl label namespace %s istio-injection=disabled' to explicitly mark it as not needing injection."}
	PodMissingProxy                                  = MessageType{"IST0103", "PodMissingProxy", Warning, "The pod %s is missing the Istio proxy. This can often be resolved by restarting or redeploying the workload."}
	SchemaValidationError                            = MessageType{"IST0106", "SchemaValidationError", Error, "Schema validation error: %v"}
	MisplacedAnnotation                              = MessageType{"IST0107", "MisplacedAnnotation", Warning, "Misplaced annotation: %s can only be applied to %s"}
	UnknownAnnotation                                = MessageType{"IST0108", "UnknownAnnotation", Warning, "Unknown annotation: %s"}
	ConflictingMeshGatewayVirtualServiceHosts        = MessageType{"IST0109", "ConflictingMeshGatewayVirtualServiceHosts", Error, "The VirtualServices %s associated with mesh gateway define the same host %s which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource."}
	ConflictingSidecarWorkloadSelectors              = MessageType{"IST0110", "ConflictingSidecarWorkloadSelectors", Error, "The Sidecars %v in namespace %q select the same workload pod %q, which can lead to undefined behavior."}
	MultipleSidecarsWithoutWorkloadSelectors         = MessageType{"IST0111", "MultipleSidecarsWithoutWorkloadSelectors", Error, "The Sidecars %v in namespace %q have no workload selector, which can lead to undefined behavior."}
	VirtualServiceDestinationPortSelectorRequired    = MessageType{"IST0112", "VirtualServiceDestinationPortSelectorRequired", Error, "This VirtualService routes to a service %q that exposes multiple ports %v. Specifying a port in the destination is required to disambiguate."}
	DeploymentAssociatedToMultipleServices           = MessageType{"IST0116", "DeploymentAssociatedToMultipleServices", Warning, "This deployment %s is associated with multiple services using port %d but different protocols: %v"}
	PortNameIsNotUnderNamingConvention               = MessageType{"IST0118", "PortNameIsNotUnderNamingConvention", Info, "Port name %s (port: %d, targetPort: %s) doesn't follow the naming convention of Istio port."}
	NamespaceMultipleInjectionLabels                 = MessageType{"IST0123", "NamespaceMultipleInjectionLabels", Warning, "The namespace has more than one type of injection labels %v, which may lead to undefined behavior. Make sure only one injection label exists."}
	InvalidAnnotation                                = MessageType{"IST0125", "InvalidAnnotation", Warning, "Invalid annotation %s: %s"}
	NoMatchingWorkloadsFound                         = MessageType{"IST0127", "NoMatchingWorkloadsFound", Warning, "No matching workloads for this resource with the following labels: %s"}
	NoServerCertificateVerificationDestinationLevel  = MessageType{"IST0128", "NoServerCertificateVerificationDestinationLevel", Warning, "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s"}
	NoServerCertificateVerificationPortLevel         = MessageType{"IST0129", "NoServerCertificateVerificationPortLevel", Warning, "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s at port %s"}
	VirtualServiceUnreachableRule                    = MessageType{"IST0130", "VirtualServiceUnreachableRule", Warning, "VirtualService rule %v not used (%s)."}
	VirtualServiceIneffectiveMatch                   = MessageType{"IST0131", "VirtualServiceIneffectiveMatch", Info, "VirtualService rule %v match %v is not used (duplicate/overlapping match in rule %v)."}
	VirtualServiceHostNotFoundInGateway              = MessageType{"IST0132", "VirtualServiceHostNotFoundInGateway", Warning, "one or more host %v defined in VirtualService %s not found in Gateway %s."}
	SchemaWarning                                    = MessageType{"IST0133", "SchemaWarning", Warning, "Schema validation warning: %v"}
	ServiceEntryAddressesRequired                    = MessageType{"IST0134", "ServiceEntryAddressesRequired", Warning, "ServiceEntry addresses are required for this protocol."}
	InvalidApplicationUID                            = MessageType{"IST0144", "InvalidApplicationUID", Warning, "User ID (UID) 1337 is reserved for the sidecar proxy."}
	NamespaceInjectionEnabledByDefault               = MessageType{"IST0148", "NamespaceInjectionEnabledByDefault", Info, "is enabled for Istio injection, as Istio is installed with enableNamespacesByDefault as true."}
	DeprecatedAnnotation                             = MessageType{"IST0135", "DeprecatedAnnotation", Info, "Annotation %q has been deprecated%s and may not work in future Istio versions."}
	DeploymentConflictingPorts                       = MessageType{"IST0137", "DeploymentConflictingPorts", Warning, "This deployment %s is associated with multiple services %v using targetPort %q but different ports: %v."}
	GatewayDuplicateCertificate                      = MessageType{"IST0138", "GatewayDuplicateCertificate", Warning, "Duplicate certificate in multiple gateways %v may cause 404s if clients re-use HTTP2 connections."}
	IngressRouteRulesNotAffected                     = MessageType{"IST0140", "IngressRouteRulesNotAffected", Warning, "Subset in virtual service %s has no effect on ingress gateway %s requests"}
	ConflictingGateways                              = MessageType{"IST0145", "ConflictingGateways", Error, "Conflict with gateways %s (workload selector %s, port %s, hosts %v)."}
	JwtClaimBasedRoutingWithoutRequestAuthN          = MessageType{"IST0149", "JwtClaimBasedRoutingWithoutRequestAuthN", Error, "The virtual service uses the JWT claim based routing (key: %s) but found no request authentication for the gateway (%s) pod (%s). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing."}
	ExternalNameServiceTypeInvalidPortName           = MessageType{"IST0150", "ExternalNameServiceTypeInvalidPortName", Warning, "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol from being forwarded correctly"}
	EnvoyFilterUsesRelativeOperation                 = MessageType{"IST0151", "EnvoyFilterUsesRelativeOperation", Warning, "This EnvoyFilter does not have a priority and has a relative patch operation set which can cause the EnvoyFilter not to be applied. Using the INSERT_FIRST of ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly."}
	EnvoyFilterUsesReplaceOperationIncorrectly       = MessageType{"IST0152", "EnvoyFilterUsesReplaceOperationIncorrectly", Error, "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER."}
	EnvoyFilterUsesAddOperationIncorrectly           = MessageType{"IST0153", "EnvoyFilterUsesAddOperationIncorrectly", Error, "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE."}
	EnvoyFilterUsesRemoveOperationIncorrectly        = MessageType{"IST0154", "EnvoyFilterUsesRemoveOperationIncorrectly", Error, "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE."}
	EnvoyFilterUsesRelativeOperationWithProxyVersion = MessageType{"IST0155", "EnvoyFilterUsesRelativeOperationWithProxyVersion", Warning, "This EnvoyFilter does not have a priority and has a relative patch operation (NSTERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied during an upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly."}
	InvalidTelemetryProvider                         = MessageType{"IST0157", "InvalidTelemetryProvider", Warning, "The Telemetry %v in namespace %q with empty providers will be ignored."}
	ConflictingTelemetryWorkloadSelectors            = MessageType{"IST0159", "ConflictingTelemetryWorkloadSelectors", Error, "The Telemetries %v in namespace %q select the same workload pod %q, which can lead to undefined behavior."}
	MultipleTelemetriesWithoutWorkloadSelectors      = MessageType{"IST0160", "MultipleTelemetriesWithoutWorkloadSelectors", Error, "The Telemetries %v in namespace %q have no workload selector, which can lead to undefined behavior."}
	GatewayPortNotDefinedOnService                   = MessageType{"IST0162", "GatewayPortNotDefinedOnService", Warning, "The gateway is listening on a target port (port %d) that is not defined in the Service associated with its workload instances (Pod selector %s). If you need to access the gateway port through the gateway Service, it will not be available."}
	ReferencedInternalGateway                        = MessageType{"IST0165", "ReferencedInternalGateway", Warning, "Gateway reference in VirtualService %s is to an implementation-generated internal Gateway: %s."}
	IneffectivePolicy                                = MessageType{"IST0167", "IneffectivePolicy", Warning, "The policy has no impact: %s."}
	DestinationRuleSubsetNotSelectPods               = MessageType{"IST0173", "DestinationRuleSubsetNotSelectPods", Error, "The Subset %s defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream)."}
	UnknownDestinationRuleHost                       = MessageType{"IST0174", "UnknownDestinationRuleHost", Warning, "The host %s defined in the DestinationRule does not match any services in the mesh."}
	ConflictingServiceEntryProtocol                  = MessageType{"IST0177", "ConflictingServiceEntryProtocol", Warning, "Multiple ServiceEntries (%s) define the same host %q and port %d with conflicting protocols (%s)."}
)

// Ref names the resource a message is about and where it was read.
type Ref struct {
	Kind      string
	Namespace string // "" for cluster-scoped kinds (Namespace)
	Name      string
	File      string
	Line      int
}

// FriendlyName is istioctl's "Kind namespace/name" (or "Kind name").
func (r Ref) FriendlyName() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Reference is "file:line" (or the file alone), as istioctl prints it.
func (r Ref) Reference() string {
	if r.Line > 0 && r.File != "" && !strings.HasSuffix(r.File, ".json") {
		return fmt.Sprintf("%s:%d", r.File, r.Line)
	}
	return r.File
}

// Message is one finding.
type Message struct {
	Type     MessageType
	Resource Ref
	Text     string // the template filled in

	analyzers []string // the analyzers that reported it
}

func newMessage(t MessageType, r Ref, args ...any) Message {
	return Message{Type: t, Resource: r, Text: fmt.Sprintf(t.Template, args...)}
}

// String is istioctl's line: `Error [IST0101] (VirtualService default/x vs.yaml:3) Referenced ...`.
func (m Message) String() string {
	origin := m.Resource.FriendlyName()
	if ref := m.Resource.Reference(); ref != "" {
		origin += " " + ref
	}
	return fmt.Sprintf("%s [%s] (%s) %s", m.Type.Level, m.Type.Code, origin, m.Text)
}

// DocumentationURL is Istio's page for the message's code.
func (m Message) DocumentationURL() string {
	return "https://istio.io/latest/docs/reference/config/analysis/" + strings.ToLower(m.Type.Code) + "/"
}
