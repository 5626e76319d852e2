package kube_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ctl"
)

// mast runs the CLI in process and returns its stdout.
func mast(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := ctl.Main(context.Background(), args, &out, &errb); code != 0 {
		return out.String(), fmt.Errorf("mast %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String(), nil
}

// testWhyOnKubernetes: a request aborted by Istio's ratings-test-abort
// fault is explained by `mast why --request-id` from the sidecars' logs as
// kubectl logs reads them (pods/log through the API server, served by the
// played kubelet), with the resource and field from the custom resources.
func testWhyOnKubernetes(t *testing.T, m *kubeMesh, client *http.Client, kubeconfig string) {
	m.apply(networking + "virtual-service-ratings-test-abort.yaml")
	const id = "5b0e6c1a-7f3d-4e2a-9c1b-0d2e4f6a8b10"
	req, err := http.NewRequest("GET", "http://ratings:9080/ratings/0", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("end-user", "jason")
	req.Header.Set("x-request-id", id)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("jason's ratings request: %s, want the fault's 500", resp.Status)
	}
	var out string
	// The proxies flush their access logs every second.
	eventually(t, time.Minute, "mast why to find the request in the sidecars' logs", func() error {
		out, err = mast(t, "why", "--kubeconfig", kubeconfig, "-n", "bookinfo", "--request-id", id)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "Flag:     FI") {
			return fmt.Errorf("no FI finding yet:\n%s", out)
		}
		return nil
	})
	t.Logf("mast why --request-id on Kubernetes:\n%s", out)
	for _, want := range []string{"logged by sleep-", "Hop:      sleep-", "(outbound)", "Details:  fault_filter_abort",
		"Resource: VirtualService bookinfo/ratings", "Field:    spec.http[0].fault.abort"} {
		if !strings.Contains(out, want) {
			t.Errorf("mast why output lacks %q", want)
		}
	}
	// The same from a time window.
	out, err = mast(t, "why", "--kubeconfig", kubeconfig, "--since", "5m")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Resource: VirtualService bookinfo/ratings") {
		t.Errorf("mast why --since 5m on Kubernetes does not name the VirtualService:\n%s", out)
	}
	m.apply(networking + "virtual-service-all-v1.yaml")
}

// testGetOnKubernetes: `mast get` shows the status mastd wrote on the
// custom resources: Reconciled, and Istio's analysis messages (Bookinfo's
// destination-rule-all defines ratings subsets no pod has: IST0173).
func testGetOnKubernetes(t *testing.T, kubeconfig string) {
	var out string
	eventually(t, time.Minute, "the DestinationRules' status", func() error {
		var err error
		out, err = mast(t, "get", "dr", "-n", "bookinfo", "--kubeconfig", kubeconfig)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[0] == "DestinationRule" && f[2] == "ratings" && f[3] == "True" &&
				strings.Contains(line, "IST0173 DestinationRuleSubsetNotSelectPods (ERROR)") {
				return nil
			}
		}
		return fmt.Errorf("no ratings line with Reconciled True and IST0173:\n%s", out)
	})
	t.Logf("mast get dr on Kubernetes:\n%s", out)
	reviews := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		reviews = reviews || len(f) == 5 && f[2] == "reviews" && f[3] == "True" && f[4] == "-"
	}
	if !reviews {
		t.Errorf("reviews' DestinationRule (every subset has pods) not shown reconciled without messages:\n%s", out)
	}
	js, err := mast(t, "get", "vs", "reviews", "-n", "bookinfo", "-o", "json", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js, `"type": "Reconciled"`) || !strings.Contains(js, `"observedGeneration"`) {
		t.Errorf("mast get -o json lacks the status as written:\n%s", js)
	}
}
