// Command bookinfo runs one service of the Bookinfo sample application
// (productpage, details, reviews v1/v2/v3 or ratings), behaving as Istio's
// sample does so Istio's documentation tasks work against it:
//
//	bookinfo --service productpage --addr 127.0.0.1:9080
//	bookinfo --service reviews --version v2 --instance reviews-v2-1 --ratings-url http://127.0.0.1:9083
//
// Outgoing calls honour HTTP_PROXY/NO_PROXY (loopback destinations are never
// proxied, as in Go's http.ProxyFromEnvironment). It logs
// `msg=listening addr=HOST:PORT` once it accepts connections and stops
// gracefully on SIGTERM or SIGINT.
package main

import (
	"os"

	"github.com/mast-mesh/mast/samples/bookinfo/app/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Getenv, os.Stderr)) }
