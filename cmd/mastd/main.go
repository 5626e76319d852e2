// Command mastd is Mast's control plane: Pilot and Galley today; the CA,
// Mixer and the service broker join it as they land (see --components).
package main

import (
	"os"

	"github.com/mast-mesh/mast/internal/controlplane"
)

func main() { os.Exit(controlplane.Main(os.Args[1:], os.Stderr)) }
