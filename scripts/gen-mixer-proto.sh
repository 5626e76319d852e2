#!/bin/sh
# Regenerates the Go code of Mast's copy of Istio 1.4's Mixer protos
# (internal/mixer/proto, from istio/api at tag 1.4.10 with the gogoproto and
# field_behavior options removed: the wire format and package names are
# unchanged). Needs protoc (Debian: apt-get install protobuf-compiler) and the
# plugins at the versions go.mod pins:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
set -eu
cd "$(dirname "$0")/../internal/mixer/proto"
PATH="$PATH:$(go env GOPATH)/bin"
out=../../..
for pkg in mixer/v1 mixer/v1/config/client policy/v1beta1; do
	protoc -I . -I /usr/include \
		--go_out="$out" --go_opt=module=github.com/mast-mesh/mast \
		--go-grpc_out="$out" --go-grpc_opt=module=github.com/mast-mesh/mast \
		"$pkg"/*.proto
done
# The service stubs go to their own package, mixergrpc, so that what links
# only the messages (mast-proxy's Mixer client, which calls through its own
# gRPC client) does not link grpc-go.
cd "$out"
g=internal/mixer/api/mixerpb
mkdir -p "$g/mixergrpc"
sed -e 's/^package mixerpb$/package mixergrpc/' \
	-e 's/\(\*\|new(\)\(CheckRequest\|CheckResponse\|ReportRequest\|ReportResponse\)\b/\1mixerpb.\2/g' \
	-e 's#^\tcontext "context"$#\tcontext "context"\n\n\tmixerpb "github.com/mast-mesh/mast/internal/mixer/api/mixerpb"#' \
	"$g/mixer_grpc.pb.go" > "$g/mixergrpc/mixer_grpc.pb.go"
rm "$g/mixer_grpc.pb.go"
gofmt -w "$g/mixergrpc/mixer_grpc.pb.go"
