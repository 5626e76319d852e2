#!/bin/sh
# Regenerates the Go code of Mast's RateLimit resource
# (internal/ratelimit/proto -> internal/ratelimit/ratelimitpb). Needs protoc
# (Debian: apt-get install protobuf-compiler) and
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
set -eu
cd "$(dirname "$0")/../internal/ratelimit/proto"
PATH="$PATH:$(go env GOPATH)/bin"
protoc -I . -I /usr/include --go_out=../../.. --go_opt=module=github.com/mast-mesh/mast \
	mast/ratelimit/v1alpha1/*.proto
