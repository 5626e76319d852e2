// Package install renders and applies Mast's Kubernetes installation: the
// Helm chart in deploy/helm/mast (Istio's CRDs, mastd's Deployment,
// Service, ServiceAccount and RBAC, the webhook configurations and the
// injection template), rendered with Helm's own engine and --set parser so
// that `mast install --set k=v` and `helm install --set k=v` produce the
// same objects, and applied with server-side apply.
package install

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mast-mesh/mast/deploy"
)

// ReleaseName is the Helm release name the chart is rendered as.
const ReleaseName = "mast"

// Options choose what to render.
type Options struct {
	// Namespace is mastd's namespace (the release namespace), istio-system
	// by default.
	Namespace string
	// Set are Helm --set expressions (a.b=c,d=e), applied in order.
	Set []string
	// ValuesFiles are Helm values files (-f), applied before Set.
	ValuesFiles []string
}

// Object is one rendered Kubernetes object.
type Object struct {
	*unstructured.Unstructured
	// Source is the chart file it came from.
	Source string
}

// LoadChart reads the embedded chart.
func LoadChart() (*chartv2.Chart, error) {
	return loadChartFS(deploy.Chart, deploy.ChartRoot)
}

func loadChartFS(fsys fs.FS, root string) (*chartv2.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: strings.TrimPrefix(p, root+"/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	return c, nil
}

// Values merges values files and --set expressions with Helm's parser.
func Values(opts Options) (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range opts.ValuesFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		vals = util.MergeTables(m, vals)
	}
	for _, s := range opts.Set {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
	}
	return vals, nil
}

// Render renders the chart into objects in apply order: CRDs, the
// namespace, then the rest by kind. Unknown values keys are errors: a typo
// in --set must not be ignored.
func Render(c *chartv2.Chart, opts Options) ([]Object, error) {
	if opts.Namespace == "" {
		opts.Namespace = "istio-system"
	}
	vals, err := Values(opts)
	if err != nil {
		return nil, err
	}
	if err := checkKeys("", vals, c.Values); err != nil {
		return nil, err
	}
	rv, err := util.ToRenderValues(c, vals, common.ReleaseOptions{Name: ReleaseName, Namespace: opts.Namespace, IsInstall: true, Revision: 1}, common.DefaultCapabilities)
	if err != nil {
		return nil, fmt.Errorf("chart values: %w", err)
	}
	out, err := engine.Render(c, rv)
	if err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	var objs []Object
	for _, crd := range c.CRDObjects() {
		o, err := decodeDocs(crd.Filename, crd.File.Data)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o...)
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasPrefix(path.Base(n), "_") || path.Ext(n) != ".yaml" {
			continue
		}
		o, err := decodeDocs(n, []byte(out[n]))
		if err != nil {
			return nil, err
		}
		objs = append(objs, o...)
	}
	slices.SortStableFunc(objs, func(a, b Object) int { return kindRank(a.GetKind()) - kindRank(b.GetKind()) })
	return objs, nil
}

// checkKeys refuses values keys the chart's values.yaml does not have.
func checkKeys(prefix string, vals, defaults map[string]any) error {
	for k, v := range vals {
		d, ok := defaults[k]
		if !ok {
			known := make([]string, 0, len(defaults))
			for dk := range defaults {
				known = append(known, prefix+dk)
			}
			sort.Strings(known)
			return fmt.Errorf("values: unknown key %q (known here: %s)", prefix+k, strings.Join(known, ", "))
		}
		vm, vok := v.(map[string]any)
		dm, dok := d.(map[string]any)
		if vok && dok && len(dm) > 0 && k != "resources" {
			if err := checkKeys(prefix+k+".", vm, dm); err != nil {
				return err
			}
		}
	}
	return nil
}

var kindOrder = []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
	"Role", "RoleBinding", "Secret", "ConfigMap", "Service", "Deployment", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}

func kindRank(k string) int {
	if i := slices.Index(kindOrder, k); i >= 0 {
		return i
	}
	return len(kindOrder)
}

func decodeDocs(source string, data []byte) ([]Object, error) {
	var objs []Object
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		doc = bytes.TrimPrefix(doc, []byte("-"))
		doc = bytes.TrimPrefix(doc, []byte("--"))
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("%s: document %d: apiVersion, kind and metadata.name are required", source, i+1)
		}
		objs = append(objs, Object{Unstructured: u, Source: source})
	}
	return objs, nil
}

// Manifest renders objects as one YAML stream, each document preceded by
// its source file, as `helm template` prints them.
func Manifest(objs []Object) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "# Source: %s\n", o.Source)
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}
