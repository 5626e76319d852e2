package ads

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// dumpSections are the xDS types a config dump shows, in Envoy's order, with
// the ConfigDump message, list key and field each uses. Secrets are left
// out: mastd's dump must not carry key material.
var dumpSections = []struct{ typeURL, dumpType, key, field string }{
	{ClusterType, "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters", "cluster"},
	{EndpointType, "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs", "endpoint_config"},
	{ListenerType, "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners", "listener"},
	{RouteType, "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs", "route_config"},
}

// ConfigDumpHandler serves Istio's /debug/config_dump?proxyID=ID: what mastd
// would send that proxy now, generated from the current push context for
// the clusters, endpoints, listeners and routes its stream subscribes to,
// as Envoy's config_dump JSON (the layout mast-proxy's admin serves).
// `mast proxy-status PROXY` compares it with the proxy's own dump.
func (s *Server) ConfigDumpHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r, "config_dump") {
			return
		}
		id := r.URL.Query().Get("proxyID")
		if id == "" {
			http.Error(w, "config_dump: want ?proxyID=NODE_ID (see /debug/syncz)", http.StatusBadRequest)
			return
		}
		b, err := s.configDump(id)
		if err != nil {
			http.Error(w, "config_dump: "+err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}

// configDump generates the dump for the newest stream of proxy id.
func (s *Server) configDump(id string) ([]byte, error) {
	var c *conn
	s.mu.RLock()
	for k := range s.conns {
		if k.proxy.ID == id && (c == nil || k.connectedAt.After(c.connectedAt)) {
			c = k
		}
	}
	s.mu.RUnlock()
	if c == nil {
		return nil, fmt.Errorf("no proxy %q is connected", id)
	}
	pc := s.current()
	if pc == nil {
		return nil, fmt.Errorf("no configuration has been pushed yet")
	}
	// The subscriptions, copied under the stream's lock.
	subs := map[string][]string{}
	c.mu.Lock()
	for _, w := range c.watches {
		if w.wildcard {
			subs[w.typeURL] = nil
		} else {
			subs[w.typeURL] = w.sortedNames()
		}
	}
	c.mu.Unlock()
	var b bytes.Buffer
	b.WriteString(`{"configs":[`)
	first := true
	for _, sec := range dumpSections {
		names, ok := subs[sec.typeURL]
		if !ok {
			continue
		}
		var res []json.RawMessage
		if names != nil || isWildcardType(sec.typeURL) {
			gen, err := s.generate(pc, c.proxy, sec.typeURL, names)
			if err != nil {
				return nil, fmt.Errorf("generating %s: %w", shortType(sec.typeURL), err)
			}
			sort.Slice(gen, func(i, j int) bool { return gen[i].Name < gen[j].Name })
			for _, g := range gen {
				a, err := anypb.New(g.Resource)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", shortType(sec.typeURL), g.Name, err)
				}
				j, err := protojson.Marshal(a)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", shortType(sec.typeURL), g.Name, err)
				}
				if sec.typeURL == ListenerType {
					j, _ = json.Marshal(map[string]any{"name": g.Name, "active_state": map[string]json.RawMessage{"listener": j}})
				} else {
					j, _ = json.Marshal(map[string]json.RawMessage{sec.field: j})
				}
				res = append(res, j)
			}
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		list, _ := json.Marshal(res)
		if res == nil {
			list = []byte("[]")
		}
		fmt.Fprintf(&b, `{"@type":%q,%q:%s}`, sec.dumpType, sec.key, list)
	}
	b.WriteString("]}")
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
