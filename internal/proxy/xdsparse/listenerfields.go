package xdsparse

// listenerRules are the Listener and FilterChain fields the parser honours
// or knows to be cosmetic; a set field outside them is refused, naming it.
// The filter chain match, transport sockets and the filters' typed configs
// have parsers of their own.
var listenerRules = rules(
	ruleRow{"envoy.config.listener.v3.Listener", honoured, "name address filter_chains default_filter_chain use_original_dst bind_to_port " +
		"per_connection_buffer_limit_bytes listener_filters listener_filters_timeout continue_on_listener_filters_timeout traffic_direction"},
	ruleRow{"envoy.config.listener.v3.Listener", cosmetic, "stat_prefix metadata"},
	ruleRow{"envoy.config.core.v3.Address", honoured, "socket_address pipe"},
	ruleRow{"envoy.config.core.v3.SocketAddress", honoured, "protocol address port_value"},
	ruleRow{"envoy.config.core.v3.Pipe", honoured, "path"},
	ruleRow{"envoy.config.listener.v3.FilterChain", honoured, "filters"},
	ruleRow{"envoy.config.listener.v3.FilterChain", parsedApart, "filter_chain_match transport_socket"},
	ruleRow{"envoy.config.listener.v3.FilterChain", cosmetic, "name metadata"},
	ruleRow{"envoy.config.listener.v3.Filter", cosmetic, "name"},
	ruleRow{"envoy.config.listener.v3.Filter", parsedApart, "typed_config"},
	// Listener filters the proxy does not implement are reported as
	// warnings (they only add what Envoy would do); proxy_protocol is refused.
	ruleRow{"envoy.config.listener.v3.ListenerFilter", cosmetic, "name"},
	ruleRow{"envoy.config.listener.v3.ListenerFilter", parsedApart, "typed_config"},
)

// hcmRules are the HttpConnectionManager fields the parser honours or knows
// to be cosmetic.
var hcmRules = rules(
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", honoured,
		"codec_type rds upgrade_configs use_remote_address xff_num_trusted_hops skip_xff_append " +
			"internal_address_config preserve_external_request_id generate_request_id server_name normalize_path merge_slashes " +
			"path_with_escaped_slashes_action forward_client_cert_details set_current_client_cert_details max_request_headers_kb " +
			"common_http_protocol_options http2_protocol_options stream_idle_timeout request_timeout request_headers_timeout drain_timeout"},
	// route_config, http_filters, access_log and tracing have parsers of
	// their own; path_normalization_options is refused with its own message.
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", parsedApart,
		"route_config http_filters access_log tracing path_normalization_options"},
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", cosmetic, "stat_prefix"},
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.Rds", honoured, "route_config_name"},
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.Rds", cosmetic, "config_source"},
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig", honoured, "upgrade_type filters enabled"},
	// An upgrade's filters: only the router, or optional ones (skipped).
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", honoured, "name is_optional"},
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", parsedApart, "typed_config"},
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.InternalAddressConfig", honoured, "cidr_ranges"},
	ruleRow{"envoy.config.core.v3.CidrRange", honoured, "address_prefix prefix_len"},
	// cert and chain are refused by parseXFCC with a precise message.
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails", honoured, "subject uri dns cert chain"},
	ruleRow{"envoy.config.core.v3.HttpProtocolOptions", honoured, "idle_timeout max_headers_count max_connection_duration"},
	ruleRow{"envoy.config.core.v3.Http2ProtocolOptions", honoured, "max_concurrent_streams"},
)

// tcpProxyRules are the TcpProxy fields the parser honours or knows to be
// cosmetic.
var tcpProxyRules = rules(
	ruleRow{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", honoured, "cluster weighted_clusters idle_timeout max_downstream_connection_duration tunneling_config"},
	// The tunnel (tunnel.go): HTTP/1.1 CONNECT or POST to the hostname.
	ruleRow{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.TunnelingConfig", honoured, "hostname use_post post_path"},
	ruleRow{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", parsedApart, "access_log"},
	ruleRow{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", cosmetic, "stat_prefix"},
	ruleRow{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster", honoured, "clusters"},
	ruleRow{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight", honoured, "name weight"},
)
