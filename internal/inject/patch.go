package inject

import (
	"bytes"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// PatchOp is one RFC 6902 JSON Patch operation.
type PatchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Patch returns the JSON Patch that turns before into after, at the
// granularity the injector changes: labels, annotations, init containers,
// containers and volumes, each replaced whole ("add" replaces an existing
// member, RFC 6902 4.1). Unchanged parts are left out.
func Patch(before, after *corev1.Pod) ([]PatchOp, error) {
	var ops []PatchOp
	for _, f := range []struct {
		path   string
		bv, av any
		empty  bool
	}{
		{"/metadata/labels", before.Labels, after.Labels, len(after.Labels) == 0},
		{"/metadata/annotations", before.Annotations, after.Annotations, len(after.Annotations) == 0},
		{"/spec/initContainers", before.Spec.InitContainers, after.Spec.InitContainers, len(after.Spec.InitContainers) == 0},
		{"/spec/containers", before.Spec.Containers, after.Spec.Containers, len(after.Spec.Containers) == 0},
		{"/spec/volumes", before.Spec.Volumes, after.Spec.Volumes, len(after.Spec.Volumes) == 0},
	} {
		b, err := json.Marshal(f.bv)
		if err != nil {
			return nil, fmt.Errorf("patch %s: %w", f.path, err)
		}
		a, err := json.Marshal(f.av)
		if err != nil {
			return nil, fmt.Errorf("patch %s: %w", f.path, err)
		}
		if bytes.Equal(a, b) || f.empty {
			continue
		}
		ops = append(ops, PatchOp{Op: "add", Path: f.path, Value: a})
	}
	return ops, nil
}
