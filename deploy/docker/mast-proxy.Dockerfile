# syntax=docker/dockerfile:1
# Builds mast-proxy from the repository root: docker build -f deploy/docker/mast-proxy.Dockerfile .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -tags grpcnotrace -trimpath -ldflags='-s -w' -o /out/mast-proxy ./cmd/mast-proxy

FROM debian:bookworm-slim
# `mast-proxy iptables` (the istio-init init container) runs iptables; the sidecar runs as 1337.
RUN apt-get update && apt-get install -y --no-install-recommends iptables ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/mast-proxy /usr/local/bin/mast-proxy
USER 1337:1337
ENTRYPOINT ["/usr/local/bin/mast-proxy"]
