package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/mast-mesh/mast/internal/buildinfo"
	"github.com/mast-mesh/mast/internal/pilot/ads"
)

// Version runs `mast version`: the client's build, and the mesh's control
// plane and proxies as mastd sees them.
func Version(args []string, stdout, stderr io.Writer) int {
	c := newCommand("version", "[flags]",
		"Prints the version of this mast binary and, when a mesh is reachable, mastd's address and every\n"+
			"connected proxy with its version (the ISTIO_VERSION metadata its node sent mastd, as istioctl reads it).\n"+
			"`mast up` runs mastd and the proxies from this same build.",
		"mast version",
		"mast version --remote=false")
	var m meshFlags
	m.register(c, false)
	remote := c.Bool("remote", true, "also ask the running mesh")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	fmt.Fprintf(stdout, "client version: %s\n", buildinfo.Version())
	if !*remote {
		return ExitOK
	}
	base, err := m.debugURL()
	if err != nil {
		fmt.Fprintf(stdout, "no running mesh: %v\n", err)
		return ExitOK
	}
	defer m.close()
	b, err := httpGet(base + "/debug/syncz")
	if err != nil {
		fmt.Fprintf(stderr, "mast version: mastd at %s: %v\n", strings.TrimPrefix(base, "http://"), err)
		return ExitFailure
	}
	var status []ads.ProxyStatus
	if err := json.Unmarshal(b, &status); err != nil {
		fmt.Fprintf(stderr, "mast version: %v\n", err)
		return ExitFailure
	}
	fmt.Fprintf(stdout, "control plane: mastd at %s\n", strings.TrimPrefix(base, "http://"))
	fmt.Fprintf(stdout, "data plane: %d proxies connected\n", len(status))
	for _, p := range status {
		v := p.Version
		if v == "" {
			v = "unknown (the proxy sent no ISTIO_VERSION metadata)"
		}
		fmt.Fprintf(stdout, "  %s (%s stream): %s\n", proxyShortName(p.ID), p.Stream, v)
	}
	return ExitOK
}

// Completion runs `mast completion bash|zsh|fish`.
func Completion(args []string, stdout, stderr io.Writer) int {
	c := newCommand("completion", "bash|zsh|fish",
		"Prints a shell completion script for mast's commands and proxy-config kinds.",
		"mast completion bash > /etc/bash_completion.d/mast   # or: source <(mast completion bash)",
		"mast completion zsh > \"${fpath[1]}/_mast\"",
		"mast completion fish > ~/.config/fish/completions/mast.fish")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if len(c.args) != 1 {
		return c.usageError(stderr, "want bash, zsh or fish")
	}
	var names []string
	for _, v := range verbs() {
		names = append(names, v.name)
	}
	names = append(names, "help")
	cmds, kinds := strings.Join(names, " "), strings.Join(proxyConfigKinds, " ")
	switch c.args[0] {
	case "bash":
		fmt.Fprintf(stdout, `_mast() {
  local cur prev
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "%s" -- "$cur"))
  elif [ "$prev" = "proxy-config" ]; then
    COMPREPLY=($(compgen -W "%s" -- "$cur"))
  elif [ "$prev" = "completion" ]; then
    COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _mast mast
`, cmds, kinds)
	case "zsh":
		fmt.Fprintf(stdout, `#compdef mast
_mast() {
  if (( CURRENT == 2 )); then
    compadd %s
  elif [[ ${words[2]} == proxy-config && CURRENT == 3 ]]; then
    compadd %s
  elif [[ ${words[2]} == completion ]]; then
    compadd bash zsh fish
  else
    _files
  fi
}
compdef _mast mast
`, cmds, kinds)
	case "fish":
		fmt.Fprintf(stdout, "complete -c mast -f -n __fish_use_subcommand -a '%s'\n", cmds)
		fmt.Fprintf(stdout, "complete -c mast -f -n '__fish_seen_subcommand_from proxy-config' -a '%s'\n", kinds)
		fmt.Fprintf(stdout, "complete -c mast -f -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
	default:
		return c.usageError(stderr, "unknown shell %q (want bash, zsh or fish)", c.args[0])
	}
	return ExitOK
}
