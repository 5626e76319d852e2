package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/analyze"
	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/localmesh"
)

// Analyze runs `mast analyze`: Istio's analyzers over files, or over the
// running local mesh's configuration.
func Analyze(args []string, stdout, stderr io.Writer) int {
	c := newCommand("analyze", "[-f FILE_OR_DIR]... [FILE_OR_DIR]...",
		"Analyzes Istio configuration and reports Istio's messages (codes, levels and wording of istioctl analyze).\n"+
			"With files, their contents are the whole cluster: Istio resources together with Kubernetes Services,\n"+
			"Pods, Deployments and Namespaces, in every namespace, with Istio's default ingress gateway workload\n"+
			"(istio: ingressgateway in istio-system) assumed present; WorkloadEntries count as workloads beside Pods.\n"+
			"Without files, it analyzes the running local mesh. Exit codes: 0 nothing at or above --failure-threshold,\n"+
			"79 analysis found errors, 1 failure, 2 usage.",
		"mast analyze -f samples/bookinfo/networking/virtual-service-all-v1.yaml -f cluster.yaml",
		"mast analyze -o json my-config/",
		"mast analyze                              # the running local mesh",
		"mast analyze --meshConfigFile mesh.yaml -f routes.yaml")
	var files pathList
	c.Var(&files, "f", "file or directory to analyze (repeatable, or comma-separated)")
	c.Var(&files, "filename", "same as -f")
	output := c.String("o", "log", "output format: log, json or yaml")
	c.StringVar(output, "output", "log", "same as -o")
	meshFile := c.String("meshConfigFile", "", "a MeshConfig (YAML, or the istio ConfigMap) to analyze with instead of Istio's defaults")
	threshold := c.String("output-threshold", "Info", "the lowest level printed: Info, Warning or Error")
	failure := c.String("failure-threshold", "Error", "the lowest level that makes the exit code 79")
	list := c.Bool("list-analyzers", false, "list the analyzers and exit")
	c.Bool("all-namespaces", true, "analyze every namespace (always; accepted for istioctl's sake)")
	c.Bool("A", true, "same as --all-namespaces")
	stateDir := c.String("state-dir", DefaultStateDir(), "state directory of the running local mesh (without files)")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	for _, a := range c.args {
		_ = files.Set(a)
	}
	if *list {
		for _, a := range analyze.Analyzers() {
			fmt.Fprintln(stdout, a.Name)
		}
		return ExitOK
	}
	outLevel, err := analyze.ParseLevel(*threshold)
	if err != nil {
		return c.usageError(stderr, "--output-threshold: %v", err)
	}
	failLevel, err := analyze.ParseLevel(*failure)
	if err != nil {
		return c.usageError(stderr, "--failure-threshold: %v", err)
	}
	switch *output {
	case "log", "json", "yaml":
	default:
		return c.usageError(stderr, "-o %q: want log, json or yaml", *output)
	}
	in := analyze.NewInput()
	if *meshFile != "" {
		mc, err := analyze.LoadMeshConfig(*meshFile)
		if err != nil {
			fmt.Fprintf(stderr, "mast analyze: --meshConfigFile: %v\n", err)
			return ExitFailure
		}
		in.Mesh = mc
	}
	target, monitoring, credentials := "", "", ""
	if len(files) == 0 {
		st, err := localmesh.ReadRunState(*stateDir)
		if err != nil {
			fmt.Fprintf(stderr, "mast analyze: give files with -f, or start a local mesh: %v\n", err)
			return ExitFailure
		}
		files, monitoring, credentials = pathList{st.ConfigDir}, st.MonitoringAddr, st.CredentialsDir
		target = "the running local mesh (" + st.ConfigDir + ")"
	}
	paths, err := expandFiles(files)
	if err != nil {
		fmt.Fprintf(stderr, "mast analyze: %v\n", err)
		return ExitFailure
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(stderr, "mast analyze: %v\n", err)
			return ExitFailure
		}
		in.Add(p, b)
	}
	if target != "" {
		in.AddWorkloadEntries()
		addLocalMeshWorkloads(in)
		addLocalMeshCredentials(in, credentials)
		if in.RegistryConflicts, err = registryConflicts(monitoring); err != nil {
			fmt.Fprintf(stderr, "mast analyze: %v\n", err)
			return ExitFailure
		}
	} else {
		in.Offline()
	}
	var shown []analyze.Message
	worst := -1
	for _, m := range analyze.Analyze(in) {
		if int(m.Type.Level) > worst {
			worst = int(m.Type.Level)
		}
		if m.Type.Level >= outLevel {
			shown = append(shown, m)
		}
	}
	if err := analyze.Write(stdout, *output, shown); err != nil {
		fmt.Fprintf(stderr, "mast analyze: %v\n", err)
		return ExitFailure
	}
	if *output == "log" {
		if len(shown) == 0 {
			what := target
			if what == "" {
				what = plural(len(paths), "file")
			}
			fmt.Fprintf(stderr, "\u2714 No validation issues found when analyzing %s.\n", what)
		}
		for _, k := range sortedKinds(in.Skipped) {
			fmt.Fprintf(stderr, "Note: %s of kind %s not analyzed (no analyzer reads that kind).\n", plural(in.Skipped[k], "document"), k)
		}
	}
	if worst >= int(failLevel) {
		return ExitAnalyze
	}
	return ExitOK
}

// addLocalMeshWorkloads adds the local mesh's ingress gateway, whose Service
// exposes every port a Gateway listens on (the local gateway binds them all).
func addLocalMeshWorkloads(in *analyze.Input) {
	labels := map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}
	in.Pods = append(in.Pods, &analyze.Pod{Object: analyze.Object{Kind: "Pod", Namespace: "istio-system", Name: "istio-ingressgateway", Labels: labels},
		Containers: []analyze.Container{{Name: "istio-proxy", Image: "mast-proxy"}}})
	svc := &analyze.Service{Object: analyze.Object{Kind: "Service", Namespace: "istio-system", Name: "istio-ingressgateway", Labels: map[string]string{"istio": "ingressgateway"}},
		Selector: map[string]string{"istio": "ingressgateway"}}
	seen := map[uint32]bool{}
	for _, r := range in.Config.List(config.Gateway) {
		for _, s := range r.Spec.(*networking.Gateway).GetServers() {
			if n := s.GetPort().GetNumber(); n != 0 && !seen[n] {
				seen[n] = true
				svc.Ports = append(svc.Ports, analyze.ServicePort{Name: strings.ToLower(s.GetPort().GetProtocol()), Port: int32(n), Protocol: "TCP"})
			}
		}
	}
	in.Services = append(in.Services, svc)
}

// addLocalMeshCredentials adds the local mesh's gateway credentials
// (DIR/NAME/tls.crt, tls.key, ca.crt) as Secrets of istio-system, where its
// gateway runs: with them, a Gateway's credentialName is checked.
func addLocalMeshCredentials(in *analyze.Input, dir string) {
	if dir == "" {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // no credentials directory: credentials are not checked
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		s := &analyze.Secret{Object: analyze.Object{Kind: "Secret", Namespace: "istio-system", Name: e.Name(), File: filepath.Join(dir, e.Name())},
			Data: map[string][]byte{}}
		for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name(), k)); err == nil {
				s.Data[k] = b
			}
		}
		in.Secrets = append(in.Secrets, s)
	}
	in.SecretsComplete = true
}

// expandFiles lists the files named, walking directories for .yaml, .yml and .json.
func expandFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					out = append(out, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sortedKinds(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// registryConflicts reads the hostnames several registries of the running
// mastd have, from its /debug/registryz.
func registryConflicts(monitoringAddr string) ([]analyze.RegistryConflict, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+monitoringAddr+"/debug/registryz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading mastd's registries: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mastd's /debug/registryz: %s", resp.Status)
	}
	var z struct {
		Conflicts []analyze.RegistryConflict `json:"conflicts"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&z); err != nil {
		return nil, fmt.Errorf("mastd's /debug/registryz: %w", err)
	}
	return z.Conflicts, nil
}
