package broker

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStateSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	sid, pid := h.ids("reviews.default", "short-lived")
	if r := h.do("PUT", "/v2/service_instances/i1", provisionBody(sid, pid)); r.status != 201 {
		t.Fatal(r.raw)
	}
	r := h.do("PUT", "/v2/service_instances/i1/service_bindings/b1", bindBody(sid, pid))
	if r.status != 201 {
		t.Fatal(r.raw)
	}
	cert := r.body["credentials"].(map[string]any)["client_certificate"]
	h.restart()
	if r := h.do("GET", "/v2/service_instances/i1", ""); r.status != 200 {
		t.Fatalf("instance after restart: %d %s", r.status, r.raw)
	}
	r = h.do("GET", "/v2/service_instances/i1/service_bindings/b1", "")
	if r.status != 200 || r.body["credentials"].(map[string]any)["client_certificate"] != cert {
		t.Fatalf("binding after restart: %d %s", r.status, r.raw)
	}
	if r := h.do("PUT", "/v2/service_instances/i1", provisionBody(sid, pid)); r.status != 200 {
		t.Fatalf("identical provision after restart: %d", r.status)
	}
	fi, err := os.Stat(filepath.Join(h.stateDir, "state.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v (it holds private keys: 0600)", err, fi.Mode())
	}
}

// TestInterruptedOperationResumes: an operation in flight when the broker
// stops stays "in progress" and completes after the next start.
func TestInterruptedOperationResumes(t *testing.T) {
	h := newHarness(t)
	sid, pid := h.ids("reviews.default", "short-lived")
	h.mesh.freeze(true)
	r := h.do("PUT", "/v2/service_instances/i1?accepts_incomplete=true", provisionBody(sid, pid))
	op := r.str("operation")
	if r.status != 202 {
		t.Fatal(r.raw)
	}
	h.stop() // the store never confirmed: the operation is interrupted
	st, err := stateFile{path: filepath.Join(h.stateDir, "state.json")}.load()
	if err != nil || st.Instances["i1"].Op.State != stateInProgress {
		t.Fatalf("persisted operation: %v %+v", err, st.Instances["i1"])
	}
	h.mesh.freeze(false)
	h.start()
	if r := h.do("GET", "/v2/service_instances/i1/last_operation?operation="+op, ""); r.status != 200 || r.str("state") != stateInProgress {
		t.Fatalf("before Resume: %s", r.raw)
	}
	h.b.Resume()
	if r := h.poll("/v2/service_instances/i1", op); r.str("state") != stateSucceeded {
		t.Fatalf("resumed operation ended: %s", r.raw)
	}
	if _, found := h.policy("i1"); !found {
		t.Fatal("no policy after the resumed provisioning")
	}
}

func TestCorruptStateIsAnError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "state.json"), []byte("{not json"), 0o600)
	_, err := New(Config{StateDir: dir, ConfigDir: t.TempDir(), Mesh: &fakeMesh{t: t}})
	if err == nil {
		t.Fatal("a corrupt state file was accepted")
	}
}

// TestResumeRestoresPolicies: a provisioned instance whose policy file
// disappeared while mastd was stopped (mast up resets its configuration)
// gets it back at the next start, with its bindings.
func TestResumeRestoresPolicies(t *testing.T) {
	h := newHarness(t)
	sid, pid := h.ids("reviews.default", "short-lived")
	h.do("PUT", "/v2/service_instances/i1", provisionBody(sid, pid))
	h.do("PUT", "/v2/service_instances/i1/service_bindings/b1", bindBody(sid, pid))
	h.stop()
	for _, f := range h.files() {
		os.Remove(f)
	}
	h.start()
	h.b.Resume()
	h.b.Close() // waits for the background writes
	if _, found := h.policy("i1"); !found || len(h.notPrincipals("i1")) != 1 {
		t.Fatalf("policy not restored: %v", h.files())
	}
}
