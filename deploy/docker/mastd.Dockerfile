# syntax=docker/dockerfile:1
# Builds mastd from the repository root: docker build -f deploy/docker/mastd.Dockerfile .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -tags grpcnotrace -trimpath -ldflags='-s -w' -o /out/mastd ./cmd/mastd

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mastd /usr/local/bin/mastd
USER 1337:1337
ENTRYPOINT ["/usr/local/bin/mastd"]
