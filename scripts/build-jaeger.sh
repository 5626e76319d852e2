#!/usr/bin/env bash
# Builds Jaeger all-in-one v1.76.0 from the Go module proxy into
# ~/.cache/mast/ (once; later runs find it there). Jaeger is built through a
# wrapper module that pins github.com/Shopify/sarama to v1.33.0 (the version
# Jaeger's own go.mod replaces it with) and starts from Jaeger's go.sum.
# It runs at nice 15: the build takes minutes on two cores.
set -euo pipefail
export GOTOOLCHAIN=local
export PATH="$PATH:/usr/local/go/bin"
VERSION=v1.76.0
CACHE="${MAST_CACHE:-$HOME/.cache/mast}"
OUT="$CACHE/jaeger-all-in-one-$VERSION"
if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$CACHE"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init mast.local/jaeger-wrapper >/dev/null 2>&1
go mod edit -replace github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0
src="$(nice -n 15 go mod download -json github.com/jaegertracing/jaeger@$VERSION | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
cp "$src/go.sum" go.sum
chmod u+w go.sum
nice -n 15 go get -tool github.com/jaegertracing/jaeger/cmd/all-in-one@$VERSION
nice -n 15 env CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$OUT.tmp" github.com/jaegertracing/jaeger/cmd/all-in-one
mv "$OUT.tmp" "$OUT"
echo "$OUT"
