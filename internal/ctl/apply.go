package ctl

import (
	"fmt"
	"io"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/localmesh"
)

// Apply runs `mast apply -f FILE_OR_DIR...` against the running local mesh.
func Apply(args []string, stdout, stderr io.Writer) int {
	return applyOrDelete("apply", args, stdout, stderr)
}

// Delete runs `mast delete -f FILE_OR_DIR...` against the running local mesh.
func Delete(args []string, stdout, stderr io.Writer) int {
	return applyOrDelete("delete", args, stdout, stderr)
}

func applyOrDelete(verb string, args []string, stdout, stderr io.Writer) int {
	about := "Writes the resources of the files into the local mesh's configuration directory, replacing any\n" +
		"resource with the same kind, namespace and name (as kubectl apply does). Nothing is written if any\n" +
		"input is invalid. Validation warnings, and findings across resources that the change introduces\n" +
		"(a route to a subset no DestinationRule defines, ...), are printed as warnings."
	example := "mast apply -f samples/bookinfo/networking/virtual-service-all-v1.yaml"
	if verb == "delete" {
		about = "Removes the resources named in the files (by kind, namespace and name) from the local mesh's\n" +
			"configuration directory, and prints the findings across resources that the removal introduces."
		example = "mast delete -f samples/bookinfo/networking/virtual-service-all-v1.yaml"
	}
	c := newCommand(verb, "-f FILE_OR_DIR [-f FILE_OR_DIR]...", about, example)
	var files pathList
	c.Var(&files, "f", "file or directory of configuration (repeatable, or comma-separated)")
	c.Var(&files, "filename", "same as -f")
	stateDir := c.String("state-dir", DefaultStateDir(), "state directory of the running local mesh")
	configDir := c.String("config", "", "configuration directory to change (default: the running local mesh's)")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if len(files) == 0 {
		return c.usageError(stderr, "-f FILE_OR_DIR is required")
	}
	dir := *configDir
	if dir == "" {
		st, err := localmesh.ReadRunState(*stateDir)
		if err != nil {
			fmt.Fprintf(stderr, "mast %s: %v\n", verb, err)
			return ExitFailure
		}
		dir = st.ConfigDir
	}
	if verb == "apply" {
		// The inputs' own warnings; what they say about each other is judged
		// below, together with the configuration they join.
		rs, probs := config.LoadPaths(files...)
		across := findingList(config.ValidateSnapshot(config.NewSnapshot(rs)))
		for _, p := range probs.Warnings() {
			if !across.has(p) {
				fmt.Fprintf(stderr, "Warning: %s\n", p)
			}
		}
	}
	before := findings(dir)
	run := localmesh.Apply
	if verb == "delete" {
		run = localmesh.Delete
	}
	changes, err := run(dir, files)
	for _, ch := range changes {
		fmt.Fprintln(stdout, ch)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mast %s: %v\n", verb, err)
		return ExitFailure
	}
	for _, p := range findings(dir) {
		if !before.has(p) {
			fmt.Fprintf(stderr, "Warning: %s\n", p)
		}
	}
	return ExitOK
}

// problemID identifies a problem by what it says, whatever line it is on.
func problemID(p config.Problem) string {
	return p.Resource.String() + "\x00" + p.Field + "\x00" + p.Message
}

// findings returns the cross-resource findings about a configuration
// directory (the checks of config.ValidateSnapshot and the analyzers).
func findings(dir string) findingList {
	rs, _ := config.LoadPaths(dir)
	return findingList(config.ValidateSnapshot(config.NewSnapshot(rs)))
}

// findingList is a list of findings.
type findingList config.Problems

func (l findingList) has(p config.Problem) bool {
	for _, q := range l {
		if problemID(p) == problemID(q) {
			return true
		}
	}
	return false
}
