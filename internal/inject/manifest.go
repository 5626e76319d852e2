package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// templatePaths says where each workload kind keeps its pod template.
var templatePaths = map[string][]string{
	"Deployment":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
	"DeploymentConfig":      {"spec", "template"},
	"Pod":                   nil, // the object itself
}

// Manifest injects every pod and pod template in a multi-document YAML (or
// JSON) stream, as `mast kube-inject -f` does offline, and writes the
// result, one document per object; other objects pass through unchanged.
// defaultNamespace applies to objects without one. Warnings name the
// object they concern.
func Manifest(cfg *Config, defaultNamespace string, in io.Reader, out io.Writer) ([]string, error) {
	docs, err := splitYAML(in)
	if err != nil {
		return nil, err
	}
	var warns []string
	first := true
	for i, doc := range docs {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return warns, fmt.Errorf("document %d: %w", i+1, err)
		}
		if obj == nil {
			continue
		}
		w, err := injectObject(cfg, defaultNamespace, obj)
		if err != nil {
			return warns, fmt.Errorf("document %d (%s): %w", i+1, describeObject(obj), err)
		}
		warns = append(warns, w...)
		b, err := yaml.Marshal(obj)
		if err != nil {
			return warns, fmt.Errorf("document %d: %w", i+1, err)
		}
		if !first {
			io.WriteString(out, "---\n")
		}
		first = false
		if _, err := out.Write(b); err != nil {
			return warns, err
		}
	}
	return warns, nil
}

func injectObject(cfg *Config, defaultNamespace string, obj map[string]any) ([]string, error) {
	kind, _ := obj["kind"].(string)
	if kind == "List" {
		items, _ := obj["items"].([]any)
		var warns []string
		for _, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				continue
			}
			w, err := injectObject(cfg, defaultNamespace, m)
			if err != nil {
				return warns, fmt.Errorf("item %s: %w", describeObject(m), err)
			}
			warns = append(warns, w...)
		}
		return warns, nil
	}
	path, ok := templatePaths[kind]
	if !ok {
		return nil, nil
	}
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	ns, _ := md["namespace"].(string)
	if ns == "" {
		ns = defaultNamespace
	}
	holder := obj
	for _, p := range path[:max(len(path)-1, 0)] {
		next, ok := holder[p].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("no %s", strings.Join(path, "."))
		}
		holder = next
	}
	var tmplObj map[string]any
	if len(path) == 0 {
		tmplObj = obj
	} else if tmplObj, ok = holder[path[len(path)-1]].(map[string]any); !ok {
		return nil, fmt.Errorf("no %s", strings.Join(path, "."))
	}
	raw, err := json.Marshal(tmplObj)
	if err != nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return nil, fmt.Errorf("pod template: %w", err)
	}
	workload := name
	if kind == "Pod" {
		workload = ""
		if pod.Name == "" {
			pod.Name = pod.GenerateName
		}
	}
	res, err := Pod(cfg, ns, workload, &pod.ObjectMeta, &pod.Spec)
	if err != nil {
		return nil, err
	}
	var warns []string
	for _, w := range res.Warnings {
		warns = append(warns, describeObject(obj)+": "+w)
	}
	if !res.Injected {
		return warns, nil
	}
	// Write back only what the injector owns, keeping the rest of the
	// template as the user wrote it.
	pm, err := toMap(pod.ObjectMeta)
	if err != nil {
		return nil, err
	}
	ps, err := toMap(pod.Spec)
	if err != nil {
		return nil, err
	}
	meta, _ := tmplObj["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		tmplObj["metadata"] = meta
	}
	meta["labels"], meta["annotations"] = pm["labels"], pm["annotations"]
	spec, _ := tmplObj["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		tmplObj["spec"] = spec
	}
	for _, k := range []string{"initContainers", "containers", "volumes"} {
		spec[k] = ps[k]
	}
	return warns, nil
}

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func describeObject(obj map[string]any) string {
	kind, _ := obj["kind"].(string)
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	return kind + "/" + name
}

// splitYAML splits a stream at "---" document separators.
func splitYAML(in io.Reader) ([][]byte, error) {
	var docs [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimPrefix(line, "---")) == "" {
			if bytes.TrimSpace(cur.Bytes()) != nil && len(bytes.TrimSpace(cur.Bytes())) > 0 {
				docs = append(docs, bytes.Clone(cur.Bytes()))
			}
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	if len(bytes.TrimSpace(cur.Bytes())) > 0 {
		docs = append(docs, cur.Bytes())
	}
	return docs, nil
}
