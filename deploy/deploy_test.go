package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerfiles: no Docker engine runs here, so this checks what can be
// checked without one: every program under cmd/ has a Dockerfile, every
// line is a comment, a continuation or a known instruction, and the
// Dockerfile builds and runs that program.
func TestDockerfiles(t *testing.T) {
	progs, err := os.ReadDir("../cmd")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"FROM": true, "WORKDIR": true, "COPY": true, "RUN": true, "USER": true, "ENTRYPOINT": true, "ENV": true, "ARG": true}
	for _, p := range progs {
		name := p.Name()
		f, err := os.Open(filepath.Join("docker", name+".Dockerfile"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var builds, entry bool
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			instr, _, _ := strings.Cut(line, " ")
			if !known[instr] {
				t.Errorf("%s.Dockerfile:%d: unknown instruction %q", name, n, instr)
			}
			builds = builds || (instr == "RUN" && strings.Contains(line, "./cmd/"+name))
			entry = entry || (instr == "ENTRYPOINT" && strings.Contains(line, `"/usr/local/bin/`+name+`"`))
		}
		f.Close()
		if !builds || !entry {
			t.Errorf("%s.Dockerfile: builds ./cmd/%s: %v, runs it: %v", name, name, builds, entry)
		}
	}
}
