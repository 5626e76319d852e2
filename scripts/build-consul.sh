#!/usr/bin/env bash
# Builds Consul v1.22.7 from the Go module proxy into ~/.cache/mast/ (once;
# later runs find it there). go get -tool resolves consul/api v1.33.7 and sdk
# v0.17.3, which do not compile with it: the wrapper requires api v1.34.5 and
# sdk v0.18.2 instead. About 12 minutes of CPU; it runs at nice 15.
set -euo pipefail
export GOTOOLCHAIN=local
export PATH="$PATH:/usr/local/go/bin"
VERSION=v1.22.7
CACHE="${MAST_CACHE:-$HOME/.cache/mast}"
OUT="$CACHE/consul-$VERSION"
if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$CACHE"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init mast.local/consul-wrapper >/dev/null 2>&1
nice -n 15 go get -tool "github.com/hashicorp/consul@$VERSION" >/dev/null 2>&1 || true
go mod edit -require github.com/hashicorp/consul/api@v1.34.5 -require github.com/hashicorp/consul/sdk@v0.18.2
nice -n 15 go mod tidy >/dev/null
nice -n 15 env CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$OUT.tmp" github.com/hashicorp/consul
mv "$OUT.tmp" "$OUT"
echo "$OUT"
