// Command mast-proxy is Mast's data plane: an xDS v3 client and an HTTP/TCP
// proxy (sidecar, ingress or egress gateway).
package main

import (
	"os"

	"github.com/mast-mesh/mast/internal/proxy/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
