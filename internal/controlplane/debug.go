package controlplane

import (
	"encoding/json"
	"maps"
	"net/http"

	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/store"
)

func sameSpec(a, b config.Resource) bool {
	return maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations) && (a.Spec == b.Spec || proto.Equal(a.Spec, b.Spec))
}

// configzResource is one loaded resource as /debug/configz lists it.
type configzResource struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Source    string `json:"source"`
}

// configzHandler serves the loaded resources and the store's file status
// (rejected files with their errors) as JSON.
func configzHandler(fs *store.File) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		snap := fs.Snapshot()
		out := struct {
			Resources []configzResource `json:"resources"`
			Store     store.Status      `json:"store"`
		}{Resources: []configzResource{}, Store: fs.Status()}
		for _, r := range snap.All() {
			out.Resources = append(out.Resources, configzResource{Kind: r.Kind.Kind, Namespace: r.Namespace, Name: r.Name, Source: r.Source.String()})
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	})
}
