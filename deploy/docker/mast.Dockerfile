# syntax=docker/dockerfile:1
# Builds mast from the repository root: docker build -f deploy/docker/mast.Dockerfile .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -tags grpcnotrace -trimpath -ldflags='-s -w' -o /out/mast ./cmd/mast

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mast /usr/local/bin/mast
USER 1337:1337
ENTRYPOINT ["/usr/local/bin/mast"]
