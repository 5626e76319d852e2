package config

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// sharedCompatDir holds Istio's own Bookinfo networking samples, beside the
// checkout (../shared/compat/istio). They are test input, not part of Mast, so
// they are read in place and never copied into the repository.
const sharedCompatDir = "../../../shared/compat/istio/bookinfo/networking"

func TestIstioBookinfoSamplesAreValid(t *testing.T) {
	for _, dir := range []string{sharedCompatDir, "../../samples/bookinfo/config"} {
		t.Run(filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir), func(t *testing.T) {
			if _, err := os.Stat(dir); err != nil {
				t.Skipf("Istio's compatibility corpus %s is absent (%v); it lives at ../shared/compat/istio beside the checkout", dir, err)
			}
			min, minResources := 20, 38
			if dir != sharedCompatDir {
				min, minResources = 5, 20
			}
			files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
			if err != nil || len(files) < min {
				t.Fatalf("found %d sample files in %s (%v), want at least %d", len(files), dir, err, min)
			}
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				rs, ps := Load(f, data)
				if ps.HasErrors() {
					t.Errorf("%s:\n%v", f, ps.Errors())
				}
				if len(rs) == 0 {
					t.Errorf("%s: no resources", f)
				}
			}
			rs, ps := LoadPaths(dir)
			if ps.HasErrors() {
				t.Errorf("LoadPaths(%s):\n%v", dir, ps.Errors())
			}
			if len(rs) < minResources {
				t.Errorf("LoadPaths(%s) = %d resources, want at least %d", dir, len(rs), minResources)
			}
		})
	}
}

// invalidCorpus lists, for every file in testdata/invalid, the field path
// the first error must name ("" only for YAML that does not parse).
var invalidCorpus = map[string]string{
	"ap-bad-ip-block.yaml":                       "spec.rules[0].from[0].source.ipBlocks[0]",
	"ap-deny-without-rules.yaml":                 "spec.rules",
	"ap-unknown-when-key.yaml":                   "spec.rules[0].when[0].key",
	"bad-duration-format.yaml":                   "spec.http[0].timeout",
	"dr-bad-label-value.yaml":                    "spec.subsets[0].labels[version]",
	"dr-bad-subset-name.yaml":                    "spec.subsets[0].name",
	"dr-duplicate-subset.yaml":                   "spec.subsets[1].name",
	"dr-maglev-not-prime.yaml":                   "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
	"dr-mutual-no-cert.yaml":                     "spec.trafficPolicy.tls.clientCertificate",
	"dr-outlier-percent.yaml":                    "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
	"dr-unknown-enum.yaml":                       "spec.trafficPolicy.loadBalancer.simple",
	"duplicate-field.yaml":                       "spec.hosts",
	"gw-bad-protocol.yaml":                       "spec.servers[0].port.protocol",
	"gw-credential-and-files.yaml":               "spec.servers[0].tls.credentialName",
	"gw-https-without-tls.yaml":                  "spec.servers[0].tls",
	"gw-missing-port-name.yaml":                  "spec.servers[0].port.name",
	"gw-port-zero.yaml":                          "spec.servers[0].port.number",
	"gw-simple-without-cert.yaml":                "spec.servers[0].tls.privateKey",
	"json-unknown-field.json":                    "spec.subset",
	"label-not-string.yaml":                      "metadata.labels[version]",
	"list-bad-item.yaml":                         "spec.http[0].route[0].mirrorPercent",
	"malformed-yaml.yaml":                        "",
	"missing-name.yaml":                          "metadata.name",
	"pa-port-level-without-selector.yaml":        "spec.portLevelMtls",
	"pa-unknown-mode.yaml":                       "spec.mtls.mode",
	"ra-missing-issuer.yaml":                     "spec.jwtRules[0].issuer",
	"ra-symmetric-jwks.yaml":                     "spec.jwtRules[0].jwks",
	"se-dns-wildcard.yaml":                       "spec.hosts[0]",
	"se-duplicate-port.yaml":                     "spec.ports[1].number",
	"se-none-with-endpoints.yaml":                "spec.endpoints",
	"se-static-bad-address.yaml":                 "spec.endpoints[0].address",
	"sidecar-egress-host-no-namespace.yaml":      "spec.egress[0].hosts[0]",
	"sidecar-empty.yaml":                         "spec",
	"sidecar-ingress-tls-plain-port.yaml":        "spec.ingress[0].tls",
	"ratelimit-bad.yaml":                         "spec.dimensions[0].requestHeader",
	"telemetry-sampling.yaml":                    "spec.tracing[0].randomSamplingPercentage",
	"telemetry-bad-cel.yaml":                     "spec.accessLogging[0].filter.expression",
	"unknown-apiversion.yaml":                    "kind",
	"unknown-kind.yaml":                          "kind",
	"unknown-top-level-field.yaml":               "specs",
	"vs-bad-host.yaml":                           "spec.hosts[0]",
	"vs-bad-regex.yaml":                          "spec.http[0].match[0].uri.regex",
	"vs-delegate-with-route.yaml":                "spec.http[0].route",
	"vs-direct-response-and-route.yaml":          "spec.http[0].directResponse",
	"vs-fault-percentage.yaml":                   "spec.http[0].fault.abort.percentage",
	"vs-hosts-not-list.yaml":                     "spec.hosts",
	"vs-negative-weight.yaml":                    "spec.http[0].route[0].weight",
	"vs-oneof-conflict.yaml":                     "spec.http[0].match[0].uri.prefix",
	"vs-port-range.yaml":                         "spec.http[0].route[0].destination.port.number",
	"vs-redirect-and-route.yaml":                 "spec.http[0].redirect",
	"vs-retry-on.yaml":                           "spec.http[0].retries.retryOn",
	"vs-rewrite-and-redirect.yaml":               "spec.http[0].redirect",
	"vs-short-delay.yaml":                        "spec.http[0].fault.delay.fixedDelay",
	"vs-unknown-field.yaml":                      "spec.http[0].route[0].destination.host",
	"vs-weights-sum.yaml":                        "spec.http[0].route",
	"vs-wildcard-mesh.yaml":                      "spec.hosts[0]",
	"vs-wrong-type.yaml":                         "spec.http[0].route[1].weight",
	"we-missing-address.yaml":                    "spec.address",
	"proxyconfig-bad-concurrency.yaml":           "spec.concurrency",
	"envoyfilter-unknown-apply-to.yaml":          "spec.configPatches[0].applyTo",
	"wg-probe-port.yaml":                         "spec.probe.httpGet.port",
	"mixer-memquota-rolling.yaml":                "spec.quotas[0].rateLimitAlgorithm",
	"mixer-redisquota-no-url.yaml":               "spec.redisServerUrl",
	"mixer-prometheus-bad-kind.yaml":             "spec.metrics[0].kind",
	"mixer-stdio-bad-stream.yaml":                "spec.logStream",
	"mixer-zipkin-bad-probability.yaml":          "spec.sampleProbability",
	"mixer-handler-unknown-adapter.yaml":         "spec.compiledAdapter",
	"mixer-instance-bad-expression.yaml":         "spec.params.value",
	"mixer-rule-match-not-bool.yaml":             "spec.match",
	"mixer-attributemanifest-no-type.yaml":       "spec.attributes[custom.attr].valueType",
	"mixer-quotaspec-negative-charge.yaml":       "spec.rules[0].quotas[0].charge",
	"mixer-quotaspecbinding-no-services.yaml":    "spec.services",
	"mixer-denier-bad-code.yaml":                 "spec.status.code",
	"mixer-listchecker-bad-entry-type.yaml":      "spec.entryType",
	"mixer-apikey-wrong-type.yaml":               "spec.api_key",
	"mixer-authorization-unknown-attribute.yaml": "spec.subject.user",
	"mixer-checknothing-unknown-field.yaml":      "spec.foo",
	"mixer-listentry-missing-value.yaml":         "spec.value",
	"mixer-logentry-bad-variable.yaml":           "spec.variables.x",
	"mixer-metric-missing-value.yaml":            "spec.value",
	"mixer-quota-unknown-attribute.yaml":         "spec.dimensions.source",
	"mixer-reportnothing-unknown-field.yaml":     "spec.x",
	"mixer-tracespan-missing-trace-id.yaml":      "spec.trace_id",
}

// TestInvalidCorpus loads every invalid document: each must be rejected with
// an error naming the file, the line, the resource and the field. The full
// output is compared with testdata/invalid.golden (go test -update rewrites it).
func TestInvalidCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("%d invalid documents, want at least 30", len(files))
	}
	kinds := map[string]bool{}
	var golden strings.Builder
	for _, f := range files {
		name := filepath.Base(f)
		wantField, listed := invalidCorpus[name]
		if !listed {
			t.Errorf("%s is not listed in invalidCorpus", name)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rs, ps := Load(f, data)
		errs := ps.Errors()
		if len(errs) == 0 || len(rs) != 0 {
			t.Errorf("%s: accepted (%d resources, problems %v)", name, len(rs), ps)
			continue
		}
		for _, p := range errs {
			s := p.String()
			if p.Source.File != f || p.Source.Line <= 0 || !strings.HasPrefix(s, f+":"+strconv.Itoa(p.Source.Line)+": error: ") {
				t.Errorf("%s: problem does not name file and line: %s", name, s)
			}
			if p.Resource.Kind.Kind == "" || p.Resource.Namespace == "" || !strings.Contains(s, p.Resource.String()) {
				t.Errorf("%s: problem does not name the resource: %s", name, s)
			}
			if p.Field == "" && wantField != "" || p.Field != "" && !strings.Contains(s, ": "+p.Field+": ") {
				t.Errorf("%s: problem does not name the field: %s", name, s)
			}
			kinds[p.Resource.Kind.Kind] = true
		}
		if errs[0].Field != wantField {
			t.Errorf("%s: first error field = %q, want %q (%s)", name, errs[0].Field, wantField, errs[0])
		}
		golden.WriteString(ps.Error())
		golden.WriteByte('\n')
	}
	for _, k := range Kinds() {
		if !kinds[k.Kind] {
			t.Errorf("no invalid document of kind %s", k.Kind)
		}
	}
	checkGolden(t, "testdata/invalid.golden", golden.String())
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// warnCorpus lists, for each file in testdata/warn, substrings of the
// warnings it must produce (and it must produce no error).
var warnCorpus = map[string][]string{
	"ra-waypoint-target.yaml": {`spec.targetRefs[0]: targetRef Service "productpage" selects a waypoint, and Mast runs none`},
	"deprecated-fields.yaml": {
		`spec.http[0].mirrorPercent: using deprecated setting "mirrorPercent"`,
		"spec.trafficPolicy.outlierDetection.consecutiveErrors: outlier detection consecutiveErrors is deprecated",
	},
	"empty-selector.yaml": {
		"spec.selector.matchLabels: workload selector specified without labels",
		"spec.rules[0]: this DENY rule uses only HTTP attributes",
	},
	"missing-gateway.yaml": {
		`missing-gateway.yaml:9: warning: VirtualService/default/bookinfo: spec.gateways[0]: gateway "bookinfo-gateway" (default/bookinfo-gateway) not found`,
	},
	"sidecar-duplicate-egress-host.yaml": {"spec.egress[0].hosts[1]: duplicated egress host"},
	"sidecar-egress-proxy-not-imported.yaml": {
		`spec.outboundTrafficPolicy.egressProxy.host: egress proxy host "egress.example.com" is not imported by any egress listener's hosts`,
	},
	"subset-selects-no-inline-endpoint.yaml": {
		`subset-selects-no-inline-endpoint.yaml:29: warning: DestinationRule/default/details: spec.subsets[1].labels: subset "v3" selects no endpoint`,
	},
	"subset-selects-nothing.yaml": {
		`subset-selects-nothing.yaml:38: warning: DestinationRule/default/ratings: spec.subsets[1].labels: subset "v2" selects no endpoint of host ratings`,
	},
	"unreachable-rule.yaml": {"spec.http[1]: rule is unreachable"},
}

func TestSuspiciousConfigWarnsButLoads(t *testing.T) {
	files, err := filepath.Glob("testdata/warn/*.yaml")
	if err != nil || len(files) != len(warnCorpus) {
		t.Fatalf("found %d files (%v), want %d", len(files), err, len(warnCorpus))
	}
	for _, f := range files {
		rs, ps := LoadPaths(f)
		if ps.HasErrors() {
			t.Errorf("%s: errors:\n%v", f, ps.Errors())
		}
		if len(rs) == 0 {
			t.Errorf("%s: no resources loaded", f)
		}
		ps = withoutNotHonoured(ps)
		out := ps.Warnings().Error()
		for _, want := range warnCorpus[filepath.Base(f)] {
			if !strings.Contains(out, want) {
				t.Errorf("%s: no warning containing %q in:\n%s", f, want, out)
			}
		}
		if len(ps.Warnings()) != len(warnCorpus[filepath.Base(f)]) {
			t.Errorf("%s: %d warnings, want %d:\n%s", f, len(ps.Warnings()), len(warnCorpus[filepath.Base(f)]), out)
		}
	}
}

// TestValidCorpus: one resource of every kind, older apiVersions, JSON, a
// List, anchors: all load with no problem at all.
func TestValidCorpus(t *testing.T) {
	rs, ps := LoadPaths("testdata/valid")
	if ps = withoutNotHonoured(ps); len(ps) != 0 {
		t.Errorf("problems:\n%v", ps)
	}
	kinds := map[Kind]bool{}
	for _, r := range rs {
		kinds[r.Kind] = true
	}
	for _, k := range Kinds() {
		if !kinds[k] {
			t.Errorf("no valid resource of kind %s", k)
		}
	}
	if want := 19 + len(MixerKinds()); len(rs) != want {
		t.Errorf("%d resources, want %d", len(rs), want)
	}
}

// withoutNotHonoured drops the warnings about fields Mast does not honour
// yet (support_test.go tests those), keeping the corpus tests about the rest.
func withoutNotHonoured(ps Problems) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == Warning && strings.HasPrefix(p.Message, "not honoured by Mast") {
			continue
		}
		out = append(out, p)
	}
	return out
}

func TestLoadPathsMissingPath(t *testing.T) {
	_, ps := LoadPaths("testdata/does-not-exist")
	if !ps.HasErrors() || ps[0].Source.File != "testdata/does-not-exist" {
		t.Errorf("problems = %v", ps)
	}
}
