package ca_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/catest"
)

func TestPluginCA(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	root := catest.NewRoot(t, "User Root", now, 5*365*24*time.Hour)
	root2 := catest.NewRoot(t, "User Root 2", now, 5*365*24*time.Hour)
	inter := catest.NewIntermediate(t, "User Intermediate", root, now, 365*24*time.Hour)
	inter2 := catest.NewIntermediate(t, "User Issuing CA", inter, now, 200*24*time.Hour)

	files := map[string]string{
		"root":         catest.WritePEM(t, dir, "root-cert.pem", root.Cert),
		"roots":        catest.WritePEM(t, dir, "roots.pem", root.Cert, root2.Cert),
		"inter":        catest.WritePEM(t, dir, "ca-cert.pem", inter.Cert),
		"interKey":     catest.WriteKey(t, dir, "ca-key.pem", inter.Key),
		"chain":        catest.WritePEM(t, dir, "cert-chain.pem", inter.Cert, root.Cert),
		"inter2":       catest.WritePEM(t, dir, "issuing.pem", inter2.Cert),
		"inter2Key":    catest.WriteKey(t, dir, "issuing-key.pem", inter2.Key),
		"inter2Chain":  catest.WritePEM(t, dir, "issuing-chain.pem", inter2.Cert, inter.Cert, root.Cert),
		"rootCertOnly": catest.WritePEM(t, dir, "self.pem", root.Cert),
		"rootKey":      catest.WriteKey(t, dir, "self-key.pem", root.Key),
	}

	for _, tc := range []struct {
		name             string
		cert, key, chain string
		rootFile         string
		wantPath         []string // verified chain subjects after the leaf
		wantBundle       int
	}{
		{"intermediate with Istio cert-chain", files["inter"], files["interKey"], files["chain"], files["root"],
			[]string{"User Intermediate", "User Root"}, 1},
		{"intermediate without chain file", files["inter"], files["interKey"], "", files["root"],
			[]string{"User Intermediate", "User Root"}, 1},
		{"two intermediates", files["inter2"], files["inter2Key"], files["inter2Chain"], files["root"],
			[]string{"User Issuing CA", "User Intermediate", "User Root"}, 1},
		{"root only", files["rootCertOnly"], files["rootKey"], "", "",
			[]string{"User Root"}, 1},
		{"two trusted roots", files["inter"], files["interKey"], files["chain"], files["roots"],
			[]string{"User Intermediate", "User Root"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *ca.Config) {
				c.PluginCert, c.PluginKey, c.PluginChain, c.PluginRoot = tc.cert, tc.key, tc.chain, tc.rootFile
			})
			if got := len(e.ca.TrustBundle()); got != tc.wantBundle {
				t.Errorf("bundle has %d roots, want %d", got, tc.wantBundle)
			}
			id := e.id("bookinfo", "productpage")
			chain, err := e.create(e.client, e.token("bookinfo", "productpage", time.Hour), catest.CSR{URIs: []string{id.String()}}.Build(t), 0)
			if err != nil {
				t.Fatalf("CreateCertificate: %v", err)
			}
			if want := len(tc.wantPath) + 1; len(chain) != want {
				t.Errorf("response has %d elements, want %d ([leaf, intermediates..., root])", len(chain), want)
			}
			_, verified := e.verifyChain(chain, id)
			var got []string
			for _, c := range verified[1:] {
				got = append(got, c.Subject.CommonName)
			}
			if strings.Join(got, " > ") != strings.Join(tc.wantPath, " > ") {
				t.Errorf("leaf chains through %q, want %q", got, tc.wantPath)
			}
			if _, err := e.ca.RotateRoot(ca.RotateOptions{}); err == nil || !strings.Contains(err.Error(), "plug-in") {
				t.Errorf("RotateRoot on a plug-in CA: %v, want a refusal", err)
			}
		})
	}

	leaf := catest.NewLeaf(t, "not a CA", root, now, time.Hour)
	notCA := catest.WritePEM(t, dir, "leaf.pem", leaf.Cert)
	notCAKey := catest.WriteKey(t, dir, "leaf-key.pem", leaf.Key)
	for _, tc := range []struct {
		name                       string
		cert, key, chain, rootFile string
		want                       string
	}{
		{"key of another cert", files["inter"], files["rootKey"], "", files["root"], "does not belong to PluginCert"},
		{"wrong root", files["inter"], files["interKey"], "", catest.WritePEM(t, dir, "r2.pem", root2.Cert), "does not chain to PluginRoot"},
		{"missing intermediate", files["inter2"], files["inter2Key"], "", files["root"], "does not chain to PluginRoot"},
		{"not a CA", notCA, notCAKey, "", files["root"], "not a CA certificate"},
		{"intermediate without root", files["inter"], files["interKey"], "", "", "PluginRoot is required"},
		{"missing file", filepath.Join(dir, "nope.pem"), files["interKey"], "", files["root"], "PluginCert"},
		{"key file holds a cert", files["inter"], files["inter"], "", files["root"], "PluginKey"},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			_, err := ca.New(ca.Config{Dir: t.TempDir(), TrustDomain: trustDomain,
				PluginCert: tc.cert, PluginKey: tc.key, PluginChain: tc.chain, PluginRoot: tc.rootFile})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
