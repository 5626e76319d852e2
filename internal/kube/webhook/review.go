// Package webhook serves mastd's Kubernetes admission webhooks over TLS
// (Istio's port 15017): /validate checks Istio resources with the same code
// as `mast validate` and refuses invalid ones naming the field; /inject adds
// the sidecar to pods with internal/inject and answers with a JSON Patch.
// Both speak AdmissionReview admission.k8s.io/v1.
package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
)

// MaxReviewBytes bounds one AdmissionReview: the API server sends objects
// of at most 3 MiB (etcd's default request limit) plus the old object.
const MaxReviewBytes = 8 << 20

const reviewAPIVersion = "admission.k8s.io/v1"

// DecodeReview parses an AdmissionReview request body. It accepts only
// admission.k8s.io/v1 AdmissionReviews with a request that has a UID, and
// rejects unknown fields and trailing data, naming what is wrong.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	if len(body) > MaxReviewBytes {
		return nil, fmt.Errorf("AdmissionReview of %d bytes exceeds the limit of %d", len(body), MaxReviewBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r admissionv1.AdmissionReview
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("AdmissionReview: %w", err)
	}
	if dec.More() {
		return nil, errors.New("AdmissionReview: data after the object")
	}
	switch {
	case r.APIVersion != reviewAPIVersion || r.Kind != "AdmissionReview":
		return nil, fmt.Errorf("AdmissionReview: apiVersion %q kind %q, want %s AdmissionReview", r.APIVersion, r.Kind, reviewAPIVersion)
	case r.Request == nil:
		return nil, errors.New("AdmissionReview: no request")
	case r.Request.UID == "":
		return nil, errors.New("AdmissionReview: request.uid is empty")
	}
	return &r, nil
}

// response wraps a response in the AdmissionReview the API server expects.
func response(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) *admissionv1.AdmissionReview {
	resp.UID = req.UID
	out := &admissionv1.AdmissionReview{Response: resp}
	out.APIVersion, out.Kind = reviewAPIVersion, "AdmissionReview"
	return out
}
