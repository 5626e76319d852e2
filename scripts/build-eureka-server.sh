#!/usr/bin/env bash
# Builds Mast's Eureka test server (test/eurekaserver/cmd/eureka-server) into
# ~/.cache/mast/ and prints its path; `mast up --platform eureka` runs it. It
# is kept out of Mast's own binaries: a protocol-faithful test double, not a
# registry to run (no peers, no persistence, no self-preservation).
set -euo pipefail
export GOTOOLCHAIN=local
export PATH="$PATH:/usr/local/go/bin"
CACHE="${MAST_CACHE:-$HOME/.cache/mast}"
OUT="$CACHE/eureka-server"
mkdir -p "$CACHE"
cd "$(dirname "$0")/.."
nice -n 15 go build -trimpath -o "$OUT.tmp" ./test/eurekaserver/cmd/eureka-server
mv "$OUT.tmp" "$OUT"
echo "$OUT"
