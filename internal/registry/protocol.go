package registry

import "strings"

// ParseProtocol parses a protocol name as Istio does, ignoring case: "HTTP",
// "http2", "GRPC", "TCP", ... Names Mast does not model map to the nearest
// protocol it does ("GRPC-Web" and "HTTP_PROXY" are HTTP); unknown names,
// "UDP" (not proxied) and "" give Unknown.
func ParseProtocol(s string) Protocol {
	switch strings.ToLower(s) {
	case "http", "http_proxy", "grpc-web":
		return HTTP
	case "http2":
		return HTTP2
	case "grpc":
		return GRPC
	case "https":
		return HTTPS
	case "tls":
		return TLS
	case "tcp":
		return TCP
	case "mongo":
		return Mongo
	case "redis":
		return Redis
	case "mysql":
		return MySQL
	}
	return Unknown
}

// ProtocolFromPortName derives a port's protocol from its name by Istio's
// naming convention: "http", "http-web", "grpc-api", "tcp-db", "grpc-web-ui"
// (GRPC-Web, so HTTP). A name without a known prefix gives Unknown.
func ProtocolFromPortName(name string) Protocol {
	const grpcWeb = "grpc-web"
	if len(name) >= len(grpcWeb) && strings.EqualFold(name[:len(grpcWeb)], grpcWeb) {
		return HTTP
	}
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[:i]
	}
	return ParseProtocol(name)
}

// PortProtocol is a declared port's protocol: the explicit protocol when it is
// given, else the one its name implies.
func PortProtocol(protocol, name string) Protocol {
	if protocol != "" {
		return ParseProtocol(protocol)
	}
	return ProtocolFromPortName(name)
}
