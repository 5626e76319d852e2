package xdsclient

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// NodeConfig describes the proxy to the control plane. Either ID is set, or
// it is built from Type, IP, Name, Namespace and DNSDomain as
// TYPE~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local.
type NodeConfig struct {
	ID        string
	Type      string // sidecar or router
	IP        string
	Name      string
	Namespace string
	DNSDomain string
	Labels    map[string]string
	// Meta holds extra string metadata, e.g. INTERCEPTION_MODE=NONE.
	Meta map[string]string
}

// BuildNode returns the xDS node for cfg with Istio's metadata keys
// (NAMESPACE, NAME, LABELS, INSTANCE_IPS, INTERCEPTION_MODE, ...).
func BuildNode(cfg NodeConfig) (*xdswire.Node, error) {
	id := cfg.ID
	if id == "" {
		if cfg.Type == "" {
			cfg.Type = "sidecar"
		}
		if cfg.Name == "" || cfg.Namespace == "" {
			return nil, fmt.Errorf("node: without --node-id, name and namespace are required")
		}
		dom := cfg.DNSDomain
		if dom == "" {
			dom = cfg.Namespace + ".svc.cluster.local"
		}
		id = cfg.Type + "~" + cfg.IP + "~" + cfg.Name + "." + cfg.Namespace + "~" + dom
	}
	parts := strings.Split(id, "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node id %q: want TYPE~IP~NAME.NAMESPACE~DOMAIN", id)
	}
	if parts[0] != "sidecar" && parts[0] != "router" {
		return nil, fmt.Errorf("node id %q: type %q is not sidecar or router", id, parts[0])
	}
	if parts[1] != "" {
		if _, err := netip.ParseAddr(parts[1]); err != nil {
			return nil, fmt.Errorf("node id %q: IP: %w", id, err)
		}
	}
	name, ns := parts[2], ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name, ns = name[:i], name[i+1:]
	}
	md := map[string]*structpb.Value{}
	str := func(k, v string) {
		if v != "" {
			md[k] = structpb.NewStringValue(v)
		}
	}
	str("NAME", name)
	str("NAMESPACE", ns)
	str("INSTANCE_IPS", parts[1])
	str("INTERCEPTION_MODE", "REDIRECT")
	keys := make([]string, 0, len(cfg.Meta))
	for k := range cfg.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		str(k, cfg.Meta[k])
	}
	if m := md["INTERCEPTION_MODE"].GetStringValue(); m != "REDIRECT" && m != "NONE" && m != "TPROXY" {
		return nil, fmt.Errorf("metadata INTERCEPTION_MODE %q: want REDIRECT, TPROXY or NONE", m)
	}
	if len(cfg.Labels) > 0 {
		lf := map[string]*structpb.Value{}
		for k, v := range cfg.Labels {
			lf[k] = structpb.NewStringValue(v)
		}
		md["LABELS"] = structpb.NewStructValue(&structpb.Struct{Fields: lf})
	}
	cluster := name
	if ns != "" {
		cluster = name + "." + ns
	}
	return &xdswire.Node{
		ID:            id,
		Cluster:       cluster,
		Metadata:      &structpb.Struct{Fields: md},
		UserAgentName: "mast-proxy",
	}, nil
}

// ParseKV parses "k=v,k2=v2" (labels) into a map.
func ParseKV(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
