#!/usr/bin/env bash
# Builds kube-apiserver v1.32.13 from the Go module proxy into ~/.cache/mast/
# (once; later runs find it there). k8s.io/kubernetes is built through a wrapper
# module that pins every staging module (k8s.io/api, client-go, ...) to the
# matching v0.32.13 release, except k8s.io/sample-apiserver at v0.32.3 (v0.32.13
# is refused by the module proxy). About 11 minutes of CPU; it runs at nice 15.
set -euo pipefail
export GOTOOLCHAIN=local
export PATH="$PATH:/usr/local/go/bin"
VERSION=v1.32.13
STAGING=v0.32.13
CACHE="${MAST_CACHE:-$HOME/.cache/mast}"
OUT="$CACHE/kube-apiserver-$VERSION"
if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$CACHE"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init mast.local/kube-apiserver-wrapper >/dev/null 2>&1
staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller"
for m in $staging; do
  v=$STAGING
  [ "$m" = sample-apiserver ] && v=v0.32.3
  go mod edit -replace "k8s.io/$m=k8s.io/$m@$v"
done
go mod edit -require "k8s.io/kubernetes@$VERSION"
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
nice -n 15 go mod tidy >/dev/null
nice -n 15 env CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$OUT.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$OUT.tmp" "$OUT"
echo "$OUT"
