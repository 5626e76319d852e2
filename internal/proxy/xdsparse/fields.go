package xdsparse

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldRule says what the parser does with one xDS field.
type fieldRule uint8

const (
	// honoured: parsed and carried out; the checker descends into it.
	honoured fieldRule = iota + 1
	// cosmetic: changes nothing about traffic in this proxy (names, stats,
	// metadata for other consumers); accepted, not descended.
	cosmetic
	// parsedApart: an Any or a part whose own parser refuses what it
	// cannot honour (TLS contexts, typed protocol options, filter configs).
	parsedApart
)

// fieldRules maps a field's full name ("envoy.config.cluster.v3.Cluster.name")
// to its rule. A set field that is in no rule is refused: the proxy NACKs
// the resource naming the field, instead of silently dropping it.
type fieldRules map[protoreflect.FullName]fieldRule

// rules builds fieldRules from (message, rule, space-separated field names) rows.
func rules(rows ...ruleRow) fieldRules {
	out := fieldRules{}
	for _, r := range rows {
		for _, f := range strings.Fields(r.fields) {
			out[protoreflect.FullName(r.message+"."+f)] = r.rule
		}
	}
	return out
}

type ruleRow struct {
	message string
	rule    fieldRule
	fields  string
}

// checkFields walks the populated fields of m and returns an error naming
// every one that rs neither honours nor knows to be cosmetic.
func checkFields(m proto.Message, rs fieldRules) error {
	var bad []string
	var walk func(m protoreflect.Message, path string)
	walk = func(m protoreflect.Message, path string) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			p := string(fd.Name())
			if path != "" {
				p = path + "." + p
			}
			switch rs[fd.FullName()] {
			case cosmetic, parsedApart:
				return true
			case honoured:
			default:
				bad = append(bad, p)
				return true
			}
			switch {
			case fd.IsMap():
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
						walk(mv.Message(), p+"["+k.String()+"]")
						return true
					})
				}
			case fd.IsList():
				if fd.Kind() == protoreflect.MessageKind {
					for i := 0; i < v.List().Len(); i++ {
						walk(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
					}
				}
			case fd.Kind() == protoreflect.MessageKind && !wellKnown(fd.Message()):
				walk(v.Message(), p)
			}
			return true
		})
	}
	walk(m.ProtoReflect(), "")
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("not supported by mast-proxy: %s", strings.Join(bad, ", "))
}

// wellKnown reports whether md is one of Google's wrapper, duration or
// struct types, whose inner fields are values, not options.
func wellKnown(md protoreflect.MessageDescriptor) bool {
	return strings.HasPrefix(string(md.FullName()), "google.protobuf.")
}

// clusterRules are the Cluster fields (and the ClusterLoadAssignment fields
// of an inline load_assignment) the parser honours or knows to be cosmetic.
var clusterRules = rules(
	ruleRow{"envoy.config.cluster.v3.Cluster", honoured, "name type eds_cluster_config connect_timeout lb_policy ring_hash_lb_config maglev_lb_config " +
		"circuit_breakers http2_protocol_options common_http_protocol_options max_requests_per_connection load_assignment outlier_detection " +
		"common_lb_config upstream_connection_options"},
	// cluster_type and load_balancing_policy are refused by ParseCluster with a precise message.
	ruleRow{"envoy.config.cluster.v3.Cluster", parsedApart, "transport_socket transport_socket_matches typed_extension_protocol_options cluster_type load_balancing_policy"},
	// slowstart.go: slow start (Istio's warmup) of round robin and least request.
	ruleRow{"envoy.config.cluster.v3.Cluster", honoured, "round_robin_lb_config least_request_lb_config"},
	ruleRow{"envoy.config.cluster.v3.Cluster.RoundRobinLbConfig", honoured, "slow_start_config"},
	ruleRow{"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig", honoured, "slow_start_config choice_count"},
	ruleRow{"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig", parsedApart, "active_request_bias"},
	ruleRow{"envoy.config.cluster.v3.Cluster.SlowStartConfig", honoured, "slow_start_window aggression min_weight_percent"},
	// Mast has no runtime: a runtime key's value is its default.
	ruleRow{"envoy.config.core.v3.RuntimeDouble", honoured, "default_value"},
	ruleRow{"envoy.config.core.v3.RuntimeDouble", cosmetic, "runtime_key"},
	// dns_lookup_family: the proxy dials every address DNS returns with Go's resolver (Happy Eyeballs).
	ruleRow{"envoy.config.cluster.v3.Cluster", cosmetic, "alt_stat_name metadata track_cluster_stats dns_lookup_family"},
	ruleRow{"envoy.config.cluster.v3.Cluster.EdsClusterConfig", honoured, "service_name"},
	ruleRow{"envoy.config.cluster.v3.Cluster.EdsClusterConfig", parsedApart, "eds_config"},
	ruleRow{"envoy.config.cluster.v3.Cluster.RingHashLbConfig", honoured, "minimum_ring_size"},
	ruleRow{"envoy.config.cluster.v3.Cluster.MaglevLbConfig", honoured, "table_size"},
	ruleRow{"envoy.config.cluster.v3.Cluster.CommonLbConfig", honoured, "healthy_panic_threshold locality_weighted_lb_config"},
	// zone_aware_lb_config is refused by ParseCluster with a precise message.
	ruleRow{"envoy.config.cluster.v3.Cluster.CommonLbConfig", parsedApart, "zone_aware_lb_config"},
	ruleRow{"envoy.type.v3.Percent", honoured, "value"},
	ruleRow{"envoy.config.cluster.v3.CircuitBreakers", honoured, "thresholds"},
	ruleRow{"envoy.config.cluster.v3.CircuitBreakers.Thresholds", honoured, "priority max_connections max_pending_requests max_requests max_retries retry_budget"},
	ruleRow{"envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget", honoured, "budget_percent min_retry_concurrency budget_interval"},
	ruleRow{"envoy.config.cluster.v3.CircuitBreakers.Thresholds", cosmetic, "track_remaining"},
	ruleRow{"envoy.config.core.v3.HttpProtocolOptions", honoured, "idle_timeout max_requests_per_connection max_connection_duration"},
	ruleRow{"envoy.config.core.v3.Http2ProtocolOptions", honoured, "max_concurrent_streams connection_keepalive"},
	ruleRow{"envoy.config.core.v3.KeepaliveSettings", honoured, "interval timeout"},
	ruleRow{"envoy.config.cluster.v3.UpstreamConnectionOptions", honoured, "tcp_keepalive"},
	ruleRow{"envoy.config.core.v3.TcpKeepalive", honoured, "keepalive_probes keepalive_time keepalive_interval"},
	ruleRow{"envoy.config.cluster.v3.OutlierDetection", honoured, "consecutive_5xx enforcing_consecutive_5xx consecutive_gateway_failure " +
		"enforcing_consecutive_gateway_failure max_ejection_percent base_ejection_time max_ejection_time interval enforcing_success_rate" +
		" split_external_local_origin_errors consecutive_local_origin_failure enforcing_consecutive_local_origin_failure"},
	ruleRow{"envoy.config.endpoint.v3.ClusterLoadAssignment", honoured, "cluster_name endpoints policy"},
	ruleRow{"envoy.config.endpoint.v3.ClusterLoadAssignment.Policy", honoured, "overprovisioning_factor"},
	ruleRow{"envoy.config.endpoint.v3.LocalityLbEndpoints", honoured, "locality lb_endpoints priority load_balancing_weight"},
	ruleRow{"envoy.config.core.v3.Locality", honoured, "region zone sub_zone"},
	ruleRow{"envoy.config.endpoint.v3.LbEndpoint", honoured, "endpoint health_status load_balancing_weight"},
	// Metadata: the proxy reads envoy.transport_socket_match (Istio's tlsMode); the rest is for other consumers.
	ruleRow{"envoy.config.endpoint.v3.LbEndpoint", cosmetic, "metadata"},
	ruleRow{"envoy.config.endpoint.v3.Endpoint", honoured, "address"},
	ruleRow{"envoy.config.endpoint.v3.Endpoint", cosmetic, "hostname"},
	ruleRow{"envoy.config.core.v3.Address", honoured, "socket_address"},
	ruleRow{"envoy.config.core.v3.SocketAddress", honoured, "address port_value"},
	// typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	ruleRow{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions", honoured, "explicit_http_config use_downstream_protocol_config auto_config common_http_protocol_options outlier_detection"},
	// error_matcher: parseOutlierErrorMatcher accepts only :status exact matches and refuses the rest by name.
	ruleRow{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.OutlierDetection", parsedApart, "error_matcher"},
	ruleRow{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig", honoured, "http_protocol_options http2_protocol_options"},
	ruleRow{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig", honoured, "http_protocol_options http2_protocol_options"},
	ruleRow{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig", honoured, "http_protocol_options http2_protocol_options"},
)

// routeRules are the RouteConfiguration fields the parser honours or knows to be cosmetic.
var routeRules = rules(
	ruleRow{"envoy.config.route.v3.RouteConfiguration", honoured, "name virtual_hosts request_headers_to_add request_headers_to_remove response_headers_to_add response_headers_to_remove"},
	// validate_clusters: a route to an unknown cluster answers 503 at request time, as Envoy does when it is false.
	ruleRow{"envoy.config.route.v3.RouteConfiguration", cosmetic, "validate_clusters"},
	// vhds: virtual hosts on demand over ADS (Delta); other sources are refused in ParseRouteConfiguration.
	ruleRow{"envoy.config.route.v3.RouteConfiguration", honoured, "vhds"},
	// ignore_port_in_host_matching: virtual hosts are selected by the authority without its port.
	ruleRow{"envoy.config.route.v3.RouteConfiguration", honoured, "ignore_port_in_host_matching"},
	ruleRow{"envoy.config.route.v3.Vhds", honoured, "config_source"},
	ruleRow{"envoy.config.core.v3.ConfigSource", honoured, "ads resource_api_version"},
	ruleRow{"envoy.config.route.v3.VirtualHost", honoured, "name domains routes require_tls request_headers_to_add request_headers_to_remove " +
		"response_headers_to_add response_headers_to_remove retry_policy"},
	ruleRow{"envoy.config.route.v3.VirtualHost", parsedApart, "typed_per_filter_config"},
	ruleRow{"envoy.config.route.v3.Route", honoured, "name match route redirect direct_response non_forwarding_action request_headers_to_add " +
		"request_headers_to_remove response_headers_to_add response_headers_to_remove stat_prefix"},
	ruleRow{"envoy.config.route.v3.Route", parsedApart, "typed_per_filter_config"},
	ruleRow{"envoy.config.route.v3.Route", cosmetic, "metadata decorator"},
	ruleRow{"envoy.config.route.v3.RouteMatch", honoured, "prefix path safe_regex path_separated_prefix connect_matcher case_sensitive headers query_parameters grpc"},
	ruleRow{"envoy.config.route.v3.RouteMatch", parsedApart, "runtime_fraction dynamic_metadata filter_state"},
	ruleRow{"envoy.type.matcher.v3.RegexMatcher", honoured, "regex"},
	ruleRow{"envoy.type.matcher.v3.RegexMatcher", cosmetic, "google_re2"},
	ruleRow{"envoy.config.route.v3.HeaderMatcher", honoured, "name exact_match prefix_match suffix_match contains_match safe_regex_match present_match " +
		"range_match string_match invert_match treat_missing_header_as_empty"},
	ruleRow{"envoy.type.v3.Int64Range", honoured, "start end"},
	ruleRow{"envoy.type.matcher.v3.StringMatcher", honoured, "exact prefix suffix contains safe_regex ignore_case"},
	ruleRow{"envoy.config.route.v3.QueryParameterMatcher", honoured, "name string_match present_match"},
	ruleRow{"envoy.config.core.v3.HeaderValueOption", honoured, "header append append_action"},
	ruleRow{"envoy.config.core.v3.HeaderValue", honoured, "key value raw_value"},
	ruleRow{"envoy.config.route.v3.RouteAction", honoured, "cluster weighted_clusters prefix_rewrite regex_rewrite host_rewrite_literal auto_host_rewrite " +
		"timeout idle_timeout max_grpc_timeout max_stream_duration upgrade_configs retry_policy hash_policy request_mirror_policies hedge_policy"},
	ruleRow{"envoy.config.route.v3.HedgePolicy", honoured, "hedge_on_per_try_timeout"},
	ruleRow{"envoy.config.route.v3.RouteAction.RequestMirrorPolicy", honoured, "cluster runtime_fraction trace_sampled"},
	ruleRow{"envoy.config.core.v3.RuntimeFractionalPercent", honoured, "default_value"},
	// runtime_key: there is no runtime layer; the default value applies.
	ruleRow{"envoy.config.core.v3.RuntimeFractionalPercent", cosmetic, "runtime_key"},
	ruleRow{"envoy.type.v3.FractionalPercent", honoured, "numerator denominator"},
	ruleRow{"envoy.config.route.v3.RouteAction.MaxStreamDuration", honoured, "max_stream_duration grpc_timeout_header_max"},
	ruleRow{"envoy.type.matcher.v3.RegexMatchAndSubstitute", honoured, "pattern substitution"},
	ruleRow{"envoy.config.route.v3.WeightedCluster", honoured, "clusters"},
	ruleRow{"envoy.config.route.v3.WeightedCluster.ClusterWeight", honoured, "name weight request_headers_to_add request_headers_to_remove " +
		"response_headers_to_add response_headers_to_remove"},
	ruleRow{"envoy.config.route.v3.RouteAction.UpgradeConfig", honoured, "upgrade_type enabled connect_config"},
	ruleRow{"envoy.config.route.v3.RouteAction.UpgradeConfig.ConnectConfig", parsedApart, "proxy_protocol_config"},
	ruleRow{"envoy.config.route.v3.RetryPolicy", honoured, "retry_on num_retries per_try_timeout retriable_status_codes retry_back_off " +
		"retry_host_predicate host_selection_retry_max_attempts retry_priority"},
	ruleRow{"envoy.config.route.v3.RetryPolicy.RetryPriority", honoured, "name"},
	// typed_config: parseRetryPolicy reads previous_priorities' and refuses others.
	ruleRow{"envoy.config.route.v3.RetryPolicy.RetryPriority", parsedApart, "typed_config"},
	ruleRow{"envoy.config.route.v3.RetryPolicy.RetryBackOff", honoured, "base_interval max_interval"},
	ruleRow{"envoy.config.route.v3.RetryPolicy.RetryHostPredicate", honoured, "name"},
	ruleRow{"envoy.config.route.v3.RetryPolicy.RetryHostPredicate", parsedApart, "typed_config"},
	ruleRow{"envoy.config.route.v3.RouteAction.HashPolicy", honoured, "header cookie connection_properties query_parameter terminal"},
	ruleRow{"envoy.config.route.v3.RouteAction.HashPolicy", parsedApart, "filter_state"},
	ruleRow{"envoy.config.route.v3.RouteAction.HashPolicy.Header", honoured, "header_name"},
	ruleRow{"envoy.config.route.v3.RouteAction.HashPolicy.Cookie", honoured, "name ttl path attributes"},
	ruleRow{"envoy.config.route.v3.RouteAction.HashPolicy.CookieAttribute", honoured, "name value"},
	ruleRow{"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties", honoured, "source_ip"},
	ruleRow{"envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter", honoured, "name"},
	ruleRow{"envoy.config.route.v3.RedirectAction", honoured, "host_redirect port_redirect https_redirect scheme_redirect path_redirect prefix_rewrite response_code strip_query"},
	ruleRow{"envoy.config.route.v3.DirectResponseAction", honoured, "status body"},
	ruleRow{"envoy.config.core.v3.DataSource", honoured, "inline_string inline_bytes"},
	ruleRow{"envoy.config.core.v3.DataSource", parsedApart, "filename environment_variable"},
)

// tlsRules are the fields of Upstream/DownstreamTlsContext the proxy
// carries out; the TLS parser refuses unsupported values of these itself.
var tlsRules = rules(
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", honoured, "common_tls_context sni"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", honoured, "common_tls_context require_client_certificate"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext", honoured, "tls_params tls_certificates tls_certificate_sds_secret_configs " +
		"tls_certificate_provider_instance validation_context combined_validation_context validation_context_sds_secret_config alpn_protocols"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.TlsParameters", honoured, "tls_minimum_protocol_version tls_maximum_protocol_version cipher_suites"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", honoured, "certificate_chain private_key"},
	ruleRow{"envoy.config.core.v3.DataSource", honoured, "filename inline_bytes inline_string"},
	ruleRow{"envoy.config.core.v3.DataSource", parsedApart, "environment_variable"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig", honoured, "name"},
	// sds_config: the proxy's agent serves the secrets it names, whatever the source says.
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig", cosmetic, "sds_config"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.CertificateProviderPluginInstance", honoured, "instance_name certificate_name"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext", honoured,
		"default_validation_context validation_context_sds_secret_config validation_context_certificate_provider_instance"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext", honoured, "trusted_ca system_root_certs " +
		"match_typed_subject_alt_names match_subject_alt_names ca_certificate_provider_instance only_verify_leaf_cert_crl"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext", parsedApart, "crl verify_certificate_spki verify_certificate_hash trust_chain_verification"},
	ruleRow{"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher", honoured, "san_type matcher"},
	ruleRow{"envoy.type.matcher.v3.StringMatcher", honoured, "exact prefix suffix contains safe_regex ignore_case"},
	ruleRow{"envoy.type.matcher.v3.RegexMatcher", honoured, "regex"},
	ruleRow{"envoy.type.matcher.v3.RegexMatcher", cosmetic, "google_re2"},
)

// chainMatchRules are the FilterChainMatch fields SelectChain evaluates.
var chainMatchRules = rules(
	ruleRow{"envoy.config.listener.v3.FilterChainMatch", honoured, "destination_port prefix_ranges server_names transport_protocol application_protocols source_prefix_ranges"},
	ruleRow{"envoy.config.core.v3.CidrRange", honoured, "address_prefix prefix_len"},
)
