package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// X runs `mast x ...`, istioctl's experimental commands: `x authz check`.
func X(args []string, stdout, stderr io.Writer) int {
	if len(args) >= 2 && args[0] == "authz" && args[1] == "check" {
		return AuthzCheck(args[2:], stdout, stderr)
	}
	c := newCommand("x", "authz check PROXY [flags]",
		"Experimental commands, as istioctl x: `authz check PROXY` lists the AuthorizationPolicies in force\n"+
			"at a proxy (from the RBAC filters of its listeners), with their action and number of rules.",
		"mast x authz check ratings-v1")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	return c.usageError(stderr, "want `authz check PROXY`")
}

// authzRow is one line of istioctl's `x authz check` table.
type authzRow struct {
	Action string `json:"action"`
	Policy string `json:"authorizationPolicy"` // name.namespace
	Rules  int    `json:"rules"`
}

// AuthzCheck runs `mast x authz check PROXY`.
func AuthzCheck(args []string, stdout, stderr io.Writer) int {
	c := newCommand("x authz check", "PROXY [-o json|yaml] [flags]",
		"Lists the AuthorizationPolicies in force at a proxy, read from the RBAC filters of its listeners as\n"+
			"the proxy holds them (its config_dump): ACTION (ALLOW, DENY, AUDIT; a dry-run policy's shadow rules\n"+
			"show as ACTION (dry-run)), the policy as name.namespace, and its number of rules, as istioctl x authz check.",
		"mast x authz check ratings-v1",
		"mast x authz check istio-ingressgateway -o json")
	var m meshFlags
	m.register(c, true)
	output := c.String("o", "short", "output format: short, json or yaml")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if len(c.args) != 1 {
		return c.usageError(stderr, "want one proxy")
	}
	p, err := m.findProxy(c.args[0])
	defer m.close()
	if err != nil {
		fmt.Fprintf(stderr, "mast x authz check: %v\n", err)
		return ExitFailure
	}
	b, err := httpGet("http://" + p.Admin + "/config_dump")
	if err != nil {
		fmt.Fprintf(stderr, "mast x authz check: %v\n", err)
		return ExitFailure
	}
	rows, err := authzRows(b)
	if err != nil {
		fmt.Fprintf(stderr, "mast x authz check: %v\n", err)
		return ExitFailure
	}
	if *output != "short" {
		return writeStructured(stdout, stderr, *output, rows)
	}
	writeAuthzTable(stdout, rows)
	return ExitOK
}

func writeAuthzTable(w io.Writer, rows []authzRow) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tAuthorizationPolicy\tRULES")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", r.Action, r.Policy, r.Rules)
	}
	tw.Flush()
}

// authzRows finds every RBAC filter (HTTP and network) in a config dump's
// listeners and counts the rules of each policy: Istio names them
// ns[NS]-policy[NAME]-rule[I], dry-run ones with the prefix istio-dry-run-.
func authzRows(dump []byte) ([]authzRow, error) {
	var v any
	if err := json.Unmarshal(dump, &v); err != nil {
		return nil, fmt.Errorf("config_dump: %w", err)
	}
	rules := map[[2]string]map[string]bool{} // (action, policy) -> rule names
	add := func(action string, rbac map[string]any, dryRun bool) {
		if action == "" {
			action = "ALLOW" // proto3 JSON leaves the zero value out
		}
		if a, ok := rbac["action"].(string); ok {
			action = a
		}
		if action == "LOG" {
			action = "AUDIT"
		}
		if dryRun {
			action += " (dry-run)"
		}
		pols, _ := rbac["policies"].(map[string]any)
		for name := range pols {
			policy := name
			if m := rbacPolicyRE.FindStringSubmatch(name); m != nil {
				policy = m[2] + "." + m[1]
			}
			k := [2]string{action, policy}
			if rules[k] == nil {
				rules[k] = map[string]bool{}
			}
			rules[k][name] = true
		}
	}
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			if n, _ := t["name"].(string); n == "envoy.filters.http.rbac" || n == "envoy.filters.network.rbac" {
				if tc, ok := t["typedConfig"].(map[string]any); ok {
					if r, ok := tc["rules"].(map[string]any); ok {
						add("", r, false)
					}
					if r, ok := tc["shadowRules"].(map[string]any); ok {
						add("", r, true)
					}
				}
				return
			}
			for _, y := range t {
				walk(y)
			}
		case []any:
			for _, y := range t {
				walk(y)
			}
		}
	}
	walk(v)
	rows := []authzRow{}
	for k, names := range rules {
		rows = append(rows, authzRow{Action: k[0], Policy: k[1], Rules: len(names)})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Action != rows[j].Action {
			return strings.Compare(rows[i].Action, rows[j].Action) < 0
		}
		return rows[i].Policy < rows[j].Policy
	})
	return rows, nil
}
