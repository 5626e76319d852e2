package controlplane

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/config/store"
	"github.com/mast-mesh/mast/internal/dashboard"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// DebugTokenName is the file in the CA directory that holds the token of
// the state-changing /debug endpoints when --debug-token-file is not given.
const DebugTokenName = "debug-token"

// ensureToken creates path with a random token (mode 0600) unless it exists.
func ensureToken(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(hex.EncodeToString(b) + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rotateRootHandler starts a root rotation (POST, authenticated by the
// guard around it): a new root is trusted at once, signs after
// ?propagation= (a duration), and the old root leaves the trust bundle after
// ?overlap=. It answers the schedule as JSON.
func rotateRootHandler(authority *ca.CA) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var opts ca.RotateOptions
		for name, d := range map[string]*time.Duration{"propagation": &opts.Propagation, "overlap": &opts.Overlap} {
			if v := r.URL.Query().Get(name); v != "" {
				parsed, err := time.ParseDuration(v)
				if err != nil {
					http.Error(w, fmt.Sprintf("%s=%q: %v", name, v, err), http.StatusBadRequest)
					return
				}
				*d = parsed
			}
		}
		rot, err := authority.RotateRoot(opts)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"newRootSerial": rot.NewRoot.SerialNumber.String(),
			"switchAt":      rot.SwitchAt,
			"retireAt":      rot.RetireAt,
		})
	})
}

// revokeHandler revokes ?identity= (a SPIFFE ID) with an optional ?reason=
// (POST, authenticated by the guard around it).
func revokeHandler(authority *ca.CA) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := r.URL.Query().Get("identity")
		id, err := spiffeid.FromString(raw)
		if err != nil {
			http.Error(w, fmt.Sprintf("identity=%q: want spiffe://TRUST-DOMAIN/ns/NS/sa/SA: %v", raw, err), http.StatusBadRequest)
			return
		}
		if err := authority.Revoke(id, r.URL.Query().Get("reason")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(authority.Revoked())
	})
}

// revokedHandler lists the revoked identities as JSON.
func revokedHandler(authority *ca.CA) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		list := authority.Revoked()
		if list == nil {
			list = []ca.Revocation{}
		}
		json.NewEncoder(w).Encode(list)
	})
}

// configzResource is one loaded resource as /debug/configz lists it, with
// what validation and the analyzers say of it.
type configzResource struct {
	Kind      string           `json:"kind"`
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Source    string           `json:"source"`
	Messages  []configzMessage `json:"messages"`
}

// configzMessage is one analysis message (Istio's code and level; a
// validation warning is IST0133, an error IST0106).
type configzMessage struct {
	Code      string `json:"code"`
	Level     string `json:"level"`
	Message   string `json:"message"`
	Kind      string `json:"kind,omitempty"` // for a resource not in force (Others)
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// configzHandler serves the loaded resources with their validation and
// analysis messages (the dashboard's analysis: the store's files, with the
// connected proxies as the workloads), the messages of resources not in
// force, and the store's file status (rejected files with their errors),
// as JSON.
func configzHandler(fs *store.File, proxies func() []*model.Proxy, rootNamespace string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		snap, st := fs.Snapshot(), fs.Status()
		out := struct {
			Resources []configzResource `json:"resources"`
			Others    []configzMessage  `json:"others"`
			Store     store.Status      `json:"store"`
		}{Resources: []configzResource{}, Others: []configzMessage{}, Store: st}
		index := map[[3]string]int{}
		for _, r := range snap.All() {
			index[[3]string{r.Kind.Kind, r.Namespace, r.Name}] = len(out.Resources)
			out.Resources = append(out.Resources, configzResource{Kind: r.Kind.Kind, Namespace: r.Namespace, Name: r.Name,
				Source: r.Source.String(), Messages: []configzMessage{}})
		}
		for _, m := range dashboard.AnalyzeMesh(st, proxies(), rootNamespace) {
			cm := configzMessage{Code: m.Type.Code, Level: m.Type.Level.String(), Message: m.Text}
			if i, ok := index[[3]string{m.Resource.Kind, m.Resource.Namespace, m.Resource.Name}]; ok {
				out.Resources[i].Messages = append(out.Resources[i].Messages, cm)
				continue
			}
			cm.Kind, cm.Namespace, cm.Name = m.Resource.Kind, m.Resource.Namespace, m.Resource.Name
			out.Others = append(out.Others, cm)
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	})
}
