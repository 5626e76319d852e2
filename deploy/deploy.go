// Package deploy holds what installs Mast on Kubernetes: the Helm chart
// (helm/mast, with Istio's CRDs in helm/mast/crds), embedded so that
// `mast manifest generate` and `mast install` render the very chart that
// `helm install` would, and the Dockerfiles (docker/).
package deploy

import "embed"

// Chart is the Helm chart, rooted at helm/mast.
//
//go:embed all:helm/mast
var Chart embed.FS

// ChartRoot is the chart's directory inside Chart.
const ChartRoot = "helm/mast"
