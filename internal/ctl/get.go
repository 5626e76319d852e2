package ctl

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/config/kubestore"
	"github.com/mast-mesh/mast/internal/kube/status"
	"github.com/mast-mesh/mast/internal/localmesh"
)

// shortNames are the kinds' short names kubectl knows from Istio's CRDs.
var shortNames = map[string]string{
	"vs": "VirtualService", "dr": "DestinationRule", "gw": "Gateway", "se": "ServiceEntry",
	"we": "WorkloadEntry", "wg": "WorkloadGroup", "pa": "PeerAuthentication", "ap": "AuthorizationPolicy",
	"ra": "RequestAuthentication", "ef": "EnvoyFilter",
}

// kindsNamed resolves get's KIND argument: a kind, its plural, its short
// name, or "all".
func kindsNamed(arg string) ([]config.Kind, error) {
	arg = strings.ToLower(arg)
	if s, ok := shortNames[arg]; ok {
		arg = strings.ToLower(s)
	}
	var out []config.Kind
	for _, k := range config.Kinds() {
		if arg == "all" || strings.ToLower(k.Kind) == arg || kubestore.Plural(k) == arg {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("unknown kind %q (a kind such as VirtualService, its plural, a short name such as vs, or all)", arg)
	}
	return out, nil
}

// getItem is one resource as `mast get` shows it.
type getItem struct {
	Kind       string         `json:"kind"`
	Namespace  string         `json:"namespace"`
	Name       string         `json:"name"`
	Generation int64          `json:"generation,omitempty"`
	Status     map[string]any `json:"status,omitempty"`
}

// Get runs `mast get KIND [NAME]`: resources with their status.
func Get(args []string, stdout, stderr io.Writer) int {
	c := newCommand("get", "KIND [NAME] [-n NAMESPACE] [-o text|json|yaml] [--kubeconfig FILE]",
		"Lists Istio resources with their status, as Istio writes it: the Reconciled condition (True when\n"+
			"the resource is in force, False with the validation error when it was refused) and the analysis\n"+
			"messages (Istio's codes, such as IST0101 ReferencedResourceNotFound). On Kubernetes (--kubeconfig or\n"+
			"--context) it shows the status mastd wrote on each custom resource (what `kubectl get vs -o yaml`\n"+
			"shows); for the local mesh it computes the same status from the configuration directory.\n"+
			"KIND is a kind (VirtualService), its plural (virtualservices), a short name (vs, dr, gw, se, pa,\n"+
			"ap, ra) or all.",
		"mast get vs",
		"mast get destinationrules reviews -n bookinfo -o yaml",
		"mast get all --kubeconfig ~/.kube/config -n bookinfo")
	var m meshFlags
	m.register(c, false)
	kf := &m.kube
	namespace := c.String("n", "", "only this namespace (default: every namespace)")
	output := c.String("o", "text", "output format: text, json or yaml")
	if code, ok := c.parse(args, stdout, stderr); !ok {
		return code
	}
	if len(c.args) < 1 || len(c.args) > 2 {
		return c.usageError(stderr, "want KIND [NAME]")
	}
	kinds, err := kindsNamed(c.args[0])
	if err != nil {
		return c.usageError(stderr, "%v", err)
	}
	var items []getItem
	if kf.named() {
		items, err = kubeItems(*kf)
	} else {
		items, err = localItems(m.stateDir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mast get: %v\n", err)
		return ExitFailure
	}
	var keep []getItem
	for _, it := range items {
		match := (*namespace == "" || it.Namespace == *namespace) && (len(c.args) < 2 || it.Name == c.args[1])
		for _, k := range kinds {
			if match && it.Kind == k.Kind {
				keep = append(keep, it)
				break
			}
		}
	}
	sort.Slice(keep, func(i, j int) bool {
		a, b := keep[i], keep[j]
		return a.Kind+"/"+a.Namespace+"/"+a.Name < b.Kind+"/"+b.Namespace+"/"+b.Name
	})
	if *output != "text" {
		if keep == nil {
			keep = []getItem{}
		}
		return writeStructured(stdout, stderr, *output, keep)
	}
	if len(keep) == 0 {
		fmt.Fprintln(stdout, "No resources found.")
		return ExitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tRECONCILED\tMESSAGES")
	for _, it := range keep {
		reconciled, msgs := summarize(it)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Kind, it.Namespace, it.Name, reconciled, msgs)
	}
	tw.Flush()
	return ExitOK
}

// summarize reads a status: the Reconciled condition's status, and the
// messages (the condition's when False, else the validation messages'
// codes and names).
func summarize(it getItem) (reconciled, msgs string) {
	if it.Status == nil {
		return "Unknown", "no status written yet (mastd writes it as leader)"
	}
	reconciled = "Unknown"
	var out []string
	conds, _ := it.Status["conditions"].([]any)
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if cm["type"] != status.ConditionReconciled {
			continue
		}
		reconciled = fmt.Sprint(cm["status"])
		if reconciled != "True" {
			out = append(out, fmt.Sprint(cm["message"]))
		}
	}
	vms, _ := it.Status["validationMessages"].([]any)
	for _, v := range vms {
		vm, _ := v.(map[string]any)
		ty, _ := vm["type"].(map[string]any)
		out = append(out, fmt.Sprintf("%v %v (%v)", ty["code"], ty["name"], vm["level"]))
	}
	if g, ok := it.Status["observedGeneration"]; ok && it.Generation > 0 && fmt.Sprint(g) != fmt.Sprint(it.Generation) {
		out = append(out, fmt.Sprintf("status is of generation %v, the resource is at %d", g, it.Generation))
	}
	if len(out) == 0 {
		return reconciled, "-"
	}
	return reconciled, strings.Join(out, "; ")
}

// kubeItems reads every Istio resource and the status mastd wrote on it.
func kubeItems(kf kubeFlags) ([]getItem, error) {
	rc, err := kf.restConfig()
	if err != nil {
		return nil, err
	}
	cfg, err := readConfig(context.Background(), rc)
	if err != nil {
		return nil, err
	}
	out := make([]getItem, 0, len(cfg.objects))
	for _, o := range cfg.objects {
		out = append(out, getItem{Kind: o.Kind.Kind, Namespace: o.Namespace, Name: o.Name, Generation: o.Generation, Status: o.Status})
	}
	return out, nil
}

// localItems computes, for the local mesh's configuration directory, the
// status mastd writes on Kubernetes (validation and analysis; no pods or
// Services of a cluster to analyze against).
func localItems(stateDir string) ([]getItem, error) {
	st, err := localmesh.ReadRunState(stateDir)
	if err != nil {
		return nil, err
	}
	rs, probs := config.LoadPaths(st.ConfigDir)
	objs := map[config.Key]*kubestore.Object{}
	object := func(k config.Key) *kubestore.Object {
		o := objs[k]
		if o == nil {
			o = &kubestore.Object{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name}
			objs[k] = o
		}
		return o
	}
	for _, r := range rs {
		object(r.Key())
	}
	for _, p := range probs {
		if p.Resource.Name != "" {
			o := object(p.Resource)
			o.Problems = append(o.Problems, p)
		}
	}
	list := make([]*kubestore.Object, 0, len(objs))
	for _, o := range objs {
		list = append(list, o)
	}
	want := status.Desired(list, config.NewSnapshot(rs), status.Cluster{})
	out := make([]getItem, 0, len(list))
	for _, o := range list {
		out = append(out, getItem{Kind: o.Kind.Kind, Namespace: o.Namespace, Name: o.Name,
			Status: want[kubestore.SourceName(o.Kind, o.Namespace, o.Name)]})
	}
	return out, nil
}
