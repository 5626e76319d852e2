package analyze

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Istio's analyzer tests (pkg/config/analysis/analyzers/analyzers_test.go,
// its testGrid and testdata) are the reference for what istioctl analyze
// reports. TestIstioParity reads them from an Istio source tree -- a
// checkout or a bare git directory, MAST_ISTIO_SRC or the mirror at
// defaultIstioSrc -- runs Mast's analysis over each case's input files as
// `mast analyze -f` does, and compares the messages of the case's analyzer
// (code, kind, namespace and name) with the case's expected ones.
//
// go test ./internal/analyze -run TestIstioParity -v prints the parity
// figure; MAST_PARITY_ALL=1 lists every case that differs without failing
// on known gaps.

const defaultIstioSrc = "/work/.mirror/istio+istio/repo"

const analyzersDir = "pkg/config/analysis/analyzers/"

// istioSource reads files of an Istio source tree.
type istioSource struct {
	dir  string
	bare bool
}

func openIstioSource() (*istioSource, error) {
	dir := os.Getenv("MAST_ISTIO_SRC")
	if dir == "" {
		dir = defaultIstioSrc
	}
	if _, err := os.Stat(filepath.Join(dir, analyzersDir, "analyzers_test.go")); err == nil {
		return &istioSource{dir: dir}, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		return nil, fmt.Errorf("no Istio source at %s (set MAST_ISTIO_SRC to a checkout or bare git dir of istio/istio)", dir)
	}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("%s is a git directory but git is not installed", dir)
	}
	return &istioSource{dir: dir, bare: true}, nil
}

func (s *istioSource) read(path string) ([]byte, error) {
	if !s.bare {
		return os.ReadFile(filepath.Join(s.dir, path))
	}
	out, err := exec.Command("git", "--git-dir", s.dir, "show", "HEAD:"+path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("git show %s: %s", path, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("git show %s: %w", path, err)
	}
	return out, nil
}

// istioCase is one entry of Istio's testGrid.
type istioCase struct {
	name             string
	inputFiles       []string
	meshConfigFile   string
	meshNetworksFile string
	analyzer         string // the Go expression's type, e.g. "virtualservice.GatewayAnalyzer"
	expected         []istioExpect
	skipAll          bool // not among istioctl's analyzers
}

type istioExpect struct {
	msgName string // msg.NAME
	origin  string // "Kind ns/name" or "Kind name"
}

// parseTestGrid extracts testGrid from analyzers_test.go's syntax tree.
func parseTestGrid(src []byte) ([]istioCase, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "analyzers_test.go", src, 0)
	if err != nil {
		return nil, err
	}
	var grid *ast.CompositeLit
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, sp := range gd.Specs {
			vs := sp.(*ast.ValueSpec)
			if len(vs.Names) == 1 && vs.Names[0].Name == "testGrid" && len(vs.Values) == 1 {
				grid, _ = vs.Values[0].(*ast.CompositeLit)
			}
		}
	}
	if grid == nil {
		return nil, errors.New("no testGrid composite literal")
	}
	var cases []istioCase
	for _, el := range grid.Elts {
		lit, ok := el.(*ast.CompositeLit)
		if !ok {
			return nil, fmt.Errorf("%s: testGrid element is not a literal", fset.Position(el.Pos()))
		}
		var c istioCase
		for _, fe := range lit.Elts {
			kv, ok := fe.(*ast.KeyValueExpr)
			if !ok {
				return nil, fmt.Errorf("%s: field without key", fset.Position(fe.Pos()))
			}
			key := kv.Key.(*ast.Ident).Name
			var err error
			switch key {
			case "name":
				c.name, err = stringLit(kv.Value)
			case "meshConfigFile":
				c.meshConfigFile, err = stringLit(kv.Value)
			case "meshNetworksFile":
				c.meshNetworksFile, err = stringLit(kv.Value)
			case "inputFiles":
				for _, e := range kv.Value.(*ast.CompositeLit).Elts {
					s, err := stringLit(e)
					if err != nil {
						return nil, err
					}
					c.inputFiles = append(c.inputFiles, s)
				}
			case "skipAll":
				c.skipAll = kv.Value.(*ast.Ident).Name == "true"
			case "analyzer":
				c.analyzer, err = analyzerName(kv.Value)
			case "expected":
				for _, e := range kv.Value.(*ast.CompositeLit).Elts {
					m := e.(*ast.CompositeLit)
					if len(m.Elts) != 2 {
						return nil, fmt.Errorf("%s: message literal with %d fields", fset.Position(m.Pos()), len(m.Elts))
					}
					sel, ok := m.Elts[0].(*ast.SelectorExpr)
					if !ok {
						return nil, fmt.Errorf("%s: message type is not msg.NAME", fset.Position(m.Pos()))
					}
					origin, err := stringLit(m.Elts[1])
					if err != nil {
						return nil, err
					}
					c.expected = append(c.expected, istioExpect{msgName: sel.Sel.Name, origin: origin})
				}
			default:
				return nil, fmt.Errorf("%s: unknown testCase field %s", fset.Position(kv.Pos()), key)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", fset.Position(kv.Pos()), key, err)
			}
		}
		cases = append(cases, c)
	}
	return cases, nil
}

func stringLit(e ast.Expr) (string, error) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", errors.New("not a string literal")
	}
	return strconv.Unquote(bl.Value)
}

// analyzerName names the analyzer of `&pkg.Type{}` as "pkg.Type" and that
// of `schemaValidation.CollectionValidationAnalyzer(collections.Kind)` as
// "schema.ValidationAnalyzer.Kind".
func analyzerName(e ast.Expr) (string, error) {
	switch v := e.(type) {
	case *ast.UnaryExpr:
		if cl, ok := v.X.(*ast.CompositeLit); ok {
			if sel, ok := cl.Type.(*ast.SelectorExpr); ok {
				return sel.X.(*ast.Ident).Name + "." + sel.Sel.Name, nil
			}
		}
	case *ast.CallExpr:
		if sel, ok := v.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "CollectionValidationAnalyzer" && len(v.Args) == 1 {
			if arg, ok := v.Args[0].(*ast.SelectorExpr); ok {
				return "schema.ValidationAnalyzer." + arg.Sel.Name, nil
			}
		}
	}
	return "", errors.New("unrecognised analyzer expression")
}

// istioMessageCodes maps Istio's message names to codes, from messages.yaml.
func istioMessageCodes(b []byte) (map[string]string, error) {
	var f struct {
		Messages []struct {
			Name string `yaml:"name"`
			Code string `yaml:"code"`
		} `yaml:"messages"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range f.Messages {
		out[m.Name] = m.Code
	}
	return out, nil
}

// parityAnalyzers maps each Istio analyzer of the testGrid (by its Go type)
// to the Mast analyzer doing its work and the Istio messages it emits (from
// its source: the msg.New... calls).
var parityAnalyzers = map[string]struct {
	mast     string
	messages []string
}{
	"annotations.K8sAnalyzer":                              {"annotations.K8sAnalyzer", []string{"UnknownAnnotation", "InvalidAnnotation", "MisplacedAnnotation", "DeprecatedAnnotation"}},
	"authz.AuthorizationPoliciesAnalyzer":                  {"authz.AuthorizationPoliciesAnalyzer", []string{"NoMatchingWorkloadsFound", "ReferencedResourceNotFound"}},
	"deployment.ServiceAssociationAnalyzer":                {"deployment.ServiceAssociationAnalyzer", []string{"DeploymentAssociatedToMultipleServices", "DeploymentConflictingPorts"}},
	"deployment.ApplicationUIDAnalyzer":                    {"deployment.ApplicationUIDAnalyzer", []string{"InvalidApplicationUID"}},
	"deprecation.FieldAnalyzer":                            {"deprecation.FieldAnalyzer", []string{"Deprecated"}},
	"destinationrule.CaCertificateAnalyzer":                {"destinationrule.CaCertificateAnalyzer", []string{"NoServerCertificateVerificationDestinationLevel", "NoServerCertificateVerificationPortLevel"}},
	"destinationrule.PodNotSelectedAnalyzer":               {"destinationrule.PodNotSelectedAnalyzer", []string{"DestinationRuleSubsetNotSelectPods", "UnknownDestinationRuleHost"}},
	"envoyfilter.EnvoyPatchAnalyzer":                       {"envoyfilter.EnvoyPatchAnalyzer", []string{"EnvoyFilterUsesAddOperationIncorrectly", "EnvoyFilterUsesRelativeOperation", "EnvoyFilterUsesRelativeOperationWithProxyVersion", "EnvoyFilterUsesRemoveOperationIncorrectly", "EnvoyFilterUsesReplaceOperationIncorrectly"}},
	"gateway.CertificateAnalyzer":                          {"gateway.CertificateAnalyzer", []string{"GatewayDuplicateCertificate"}},
	"gateway.ConflictingGatewayAnalyzer":                   {"gateway.ConflictingGatewayAnalyzer", []string{"ConflictingGateways", "ReferencedResourceNotFound"}},
	"gateway.IngressGatewayPortAnalyzer":                   {"gateway.IngressGatewayPortAnalyzer", []string{"GatewayPortNotDefinedOnService", "ReferencedResourceNotFound"}},
	"gateway.SecretAnalyzer":                               {"gateway.SecretAnalyzer", []string{"InvalidGatewayCredential", "ReferencedResourceNotFound"}},
	"injection.Analyzer":                                   {"injection.Analyzer", []string{"NamespaceInjectionEnabledByDefault", "NamespaceMultipleInjectionLabels", "NamespaceNotInjected", "PodMissingProxy"}},
	"injection.ImageAnalyzer":                              {"injection.ImageAnalyzer", []string{"PodsIstioProxyImageMismatchInNamespace"}},
	"injection.ImageAutoAnalyzer":                          {"injection.ImageAutoAnalyzer", []string{"ImageAutoWithoutInjectionError", "ImageAutoWithoutInjectionWarning"}},
	"schema.ValidationAnalyzer.VirtualService":             {"schema.ValidationAnalyzer", []string{"SchemaValidationError", "SchemaWarning", "VirtualServiceIneffectiveMatch", "VirtualServiceUnreachableRule"}},
	"service.PortNameAnalyzer":                             {"service.PortNameAnalyzer", []string{"ExternalNameServiceTypeInvalidPortName", "PortNameIsNotUnderNamingConvention"}},
	"serviceentry.ConflictingServiceEntryProtocolAnalyzer": {"serviceentry.ConflictingServiceEntryProtocolAnalyzer", []string{"ConflictingServiceEntryProtocol"}},
	"serviceentry.ProtocolAddressesAnalyzer":               {"serviceentry.ProtocolAddressesAnalyzer", []string{"ServiceEntryAddressesRequired"}},
	"sidecar.SelectorAnalyzer":                             {"sidecar.SelectorAnalyzer", []string{"ConflictingSidecarWorkloadSelectors", "IneffectivePolicy", "MultipleSidecarsWithoutWorkloadSelectors", "ReferencedResourceNotFound"}},
	"telemetry.DefaultSelectorAnalyzer":                    {"telemetry.DefaultSelectorAnalyzer", []string{"MultipleTelemetriesWithoutWorkloadSelectors"}},
	"telemetry.LightstepAnalyzer":                          {"telemetry.LightstepAnalyzer", []string{"Deprecated"}},
	"telemetry.ProviderAnalyzer":                           {"telemetry.ProviderAnalyzer", []string{"InvalidTelemetryProvider"}},
	"telemetry.SelectorAnalyzer":                           {"telemetry.SelectorAnalyzer", []string{"ConflictingTelemetryWorkloadSelectors", "ReferencedResourceNotFound"}},
	"virtualservice.ConflictingMeshGatewayHostsAnalyzer":   {"virtualservice.ConflictingMeshGatewayHostsAnalyzer", []string{"ConflictingMeshGatewayVirtualServiceHosts"}},
	"virtualservice.DestinationHostAnalyzer":               {"virtualservice.DestinationHostAnalyzer", []string{"IngressRouteRulesNotAffected", "ReferencedResourceNotFound", "VirtualServiceDestinationPortSelectorRequired"}},
	"virtualservice.DestinationRuleAnalyzer":               {"virtualservice.DestinationRuleAnalyzer", []string{"ReferencedResourceNotFound"}},
	"virtualservice.GatewayAnalyzer":                       {"virtualservice.GatewayAnalyzer", []string{"ReferencedInternalGateway", "ReferencedResourceNotFound", "VirtualServiceHostNotFoundInGateway"}},
	"virtualservice.JWTClaimRouteAnalyzer":                 {"virtualservice.JWTClaimRouteAnalyzer", []string{"JwtClaimBasedRoutingWithoutRequestAuthN"}},
}

// notApplicable lists the Istio analyzers of the testGrid about things Mast
// does not read, and why (docs/analyze.md says the same).
var notApplicable = map[string]string{
	"authn.BlockedCIDRsAnalyzer":                        "checks istiod's Deployment environment (JWKS fetch CIDR restrictions); mastd has no istiod Deployment",
	"conditions.ConditionAnalyzer":                      "reads status.conditions written by Kubernetes controllers (Services, Gateway API routes); Mast writes no such conditions",
	"externalcontrolplane.ExternalControlPlaneAnalyzer": "reads istiod's webhook configurations (MutatingWebhookConfiguration, ValidatingWebhookConfiguration); Mast has no webhooks",
	"k8sgateway.CRDVersionAnalyzer":                     "reads Gateway API CustomResourceDefinitions; Mast does not implement the Gateway API",
	"k8sgateway.SelectorAnalyzer":                       "about policies selecting Gateway API (istio.io/gateway-name) deployments; Mast does not implement the Gateway API",
	"maturity.AlphaAnalyzer":                            "not among istioctl analyze's analyzers (skipAll: Istio's All() leaves it out)",
	"multicluster.MeshNetworksAnalyzer":                 "reads meshNetworks registries of a multicluster install; Mast runs one cluster",
	"webhook.Analyzer":                                  "reads istiod's sidecar-injector MutatingWebhookConfigurations; Mast has no webhooks",
}

type parityResult struct {
	name           string
	missing, extra []string
	// byCode is the messages of the case's codes that other Mast analyzers
	// report: what `mast analyze` shows beyond the case's expectation when
	// every analyzer runs, as istioctl does.
	byCode []string
}

func TestIstioParity(t *testing.T) {
	src, err := openIstioSource()
	if err != nil {
		t.Skipf("Istio parity not checked: %v", err)
	}
	testFile, err := src.read(analyzersDir + "analyzers_test.go")
	if err != nil {
		t.Fatal(err)
	}
	cases, err := parseTestGrid(testFile)
	if err != nil {
		t.Fatalf("parsing Istio's testGrid: %v", err)
	}
	msgYAML, err := src.read("pkg/config/analysis/msg/messages.yaml")
	if err != nil {
		t.Fatal(err)
	}
	codes, err := istioMessageCodes(msgYAML)
	if err != nil {
		t.Fatalf("messages.yaml: %v", err)
	}
	var results []parityResult
	applicable, matching := 0, 0
	for _, c := range cases {
		if why, ok := notApplicable[c.analyzer]; ok {
			t.Logf("n/a  %-45s %s: %s", c.name, c.analyzer, why)
			continue
		}
		pa, ok := parityAnalyzers[c.analyzer]
		if !ok {
			t.Errorf("case %q: Istio analyzer %s is neither mapped to Mast's nor listed as not applicable", c.name, c.analyzer)
			continue
		}
		applicable++
		r, err := runParityCase(src, c, pa.mast, pa.messages, codes)
		if err != nil {
			t.Errorf("case %q: %v", c.name, err)
			continue
		}
		if len(r.byCode) > 0 {
			t.Logf("case %q: other analyzers also report %v", c.name, r.byCode)
		}
		if len(r.missing) == 0 && len(r.extra) == 0 {
			matching++
			continue
		}
		results = append(results, r)
	}
	for _, r := range results {
		t.Errorf("case %q differs from istioctl:\n  missing: %v\n  extra:   %v", r.name, r.missing, r.extra)
	}
	t.Logf("Istio analyzer parity: %d of %d applicable cases match (%d cases in Istio's testGrid)", matching, applicable, len(cases))
}

// runParityCase analyzes a case's input files as `mast analyze -f` does and
// compares the messages of mastAnalyzer with the expected ones.
func runParityCase(src *istioSource, c istioCase, mastAnalyzer string, messages []string, codes map[string]string) (parityResult, error) {
	r := parityResult{name: c.name}
	in := NewInput()
	if c.meshConfigFile != "" {
		b, err := src.read(analyzersDir + c.meshConfigFile)
		if err != nil {
			return r, err
		}
		tmp, err := os.CreateTemp("", "mesh-*.yaml")
		if err != nil {
			return r, err
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.Write(b); err != nil {
			return r, err
		}
		tmp.Close()
		if in.Mesh, err = LoadMeshConfig(tmp.Name()); err != nil {
			return r, err
		}
	}
	for _, f := range c.inputFiles {
		b, err := src.read(analyzersDir + f)
		if err != nil {
			return r, err
		}
		in.Add(f, b)
	}
	in.Offline()
	caseCodes := map[string]bool{}
	for _, n := range messages {
		caseCodes[codes[n]] = true
	}
	var got []string
	for _, m := range Analyze(in) {
		k := m.Type.Code + " " + m.Resource.Kind + " " + m.Resource.Namespace + "/" + m.Resource.Name
		switch {
		case slices.Contains(m.analyzers, mastAnalyzer):
			got = append(got, k)
		case caseCodes[m.Type.Code]:
			r.byCode = append(r.byCode, k+" ("+strings.Join(m.analyzers, ",")+")")
		}
	}
	var want []string
	for _, e := range c.expected {
		code, ok := codes[e.msgName]
		if !ok {
			return r, fmt.Errorf("message %s is not in messages.yaml", e.msgName)
		}
		kind, name, _ := strings.Cut(e.origin, " ")
		if !strings.Contains(name, "/") && kind != "Namespace" && kind != "MutatingWebhookConfiguration" {
			// Istio's tests leave the namespace empty when the file does; istioctl
			// analyze, like Mast, puts such resources in the default namespace.
			name = "default/" + name
		} else if kind == "Namespace" {
			name = "/" + name
		}
		want = append(want, code+" "+kind+" "+name)
	}
	r.missing, r.extra = multisetDiff(want, got)
	return r, nil
}

// multisetDiff returns what want has more of than got, and the reverse.
func multisetDiff(want, got []string) (missing, extra []string) {
	count := map[string]int{}
	for _, w := range want {
		count[w]++
	}
	for _, g := range got {
		count[g]--
	}
	for _, k := range slices.Sorted(maps.Keys(count)) {
		for n := count[k]; n > 0; n-- {
			missing = append(missing, k)
		}
		for n := count[k]; n < 0; n++ {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return missing, extra
}
