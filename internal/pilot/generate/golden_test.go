package generate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

type fixtureProxy struct {
	name      string
	proxy     func() *model.Proxy
	grpcNames []string
}

var fixtureProxies = []fixtureProxy{
	{name: "sidecar", proxy: productpageProxy},
	{name: "sidecar_none", proxy: reviewsNoneProxy},
	{name: "gateway", proxy: gatewayProxy},
	{name: "grpc", proxy: grpcProxy, grpcNames: []string{"echo:7070", "reviews.default:9080", "ratings.default.svc.cluster.local:9080"}},
	{name: "sidecar_other", proxy: otherProxy},
	{name: "sidecar_none_mtls", proxy: func() *model.Proxy { return withCert(reviewsNoneProxy()) }},
	{name: "sidecar_none_egress", proxy: egressNoneProxy},
}

// render writes resources as stable, indented protojson.
func render(t *testing.T, byType map[string][]model.XDSResource) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, typ := range allTypes {
		for _, r := range byType[typ] {
			js, err := protojson.Marshal(r.Resource)
			if err != nil {
				t.Fatalf("marshal %s %s: %v", typ, r.Name, err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, js); err != nil {
				t.Fatal(err)
			}
			buf.WriteString("# " + typ + " " + r.Name + "\n")
			if err := json.Indent(&buf, compact.Bytes(), "", "  "); err != nil {
				t.Fatal(err)
			}
			buf.WriteString("\n")
		}
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	pc := bookinfoPush()
	for _, fp := range fixtureProxies {
		t.Run(fp.name, func(t *testing.T) {
			byType, err := generateAll(pc, fp.proxy(), fp.grpcNames...)
			if err != nil {
				t.Fatal(err)
			}
			got := render(t, byType)
			path := filepath.Join("testdata", fp.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from generated output; run go test ./internal/pilot/generate -update and review the diff", path)
			}
		})
	}
}

type validator interface{ ValidateAll() error }

// checkResource runs go-control-plane's ValidateAll on r and on every Any nested in it.
func checkResource(t *testing.T, where string, m proto.Message) {
	t.Helper()
	v, ok := m.(validator)
	if !ok {
		t.Fatalf("%s: %T has no ValidateAll", where, m)
	}
	if err := v.ValidateAll(); err != nil {
		t.Errorf("%s: ValidateAll: %v", where, err)
	}
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Errorf("%s: Any %s: %v", where, a.GetTypeUrl(), err)
			return
		}
		checkResource(t, where+" > "+a.GetTypeUrl(), inner)
	})
}

func walkAnys(m protoreflect.Message, fn func(*anypb.Any)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		fn(a)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkAnys(l.Get(i).Message(), fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkAnys(mv.Message(), fn)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			walkAnys(v.Message(), fn)
		}
		return true
	})
}

func TestValidateAll(t *testing.T) {
	pc := bookinfoPush()
	for _, fp := range fixtureProxies {
		byType, err := generateAll(pc, fp.proxy(), fp.grpcNames...)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for typ, rs := range byType {
			for _, r := range rs {
				n++
				checkResource(t, fp.name+" "+typ+" "+r.Name, r.Resource)
				if got := resourceName(r.Resource); got != r.Name {
					t.Errorf("%s %s: resource names itself %q", fp.name, r.Name, got)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no resources", fp.name)
		}
	}
	_ = protoregistry.GlobalTypes
}

// resourceName is the name a resource carries inside itself.
func resourceName(m proto.Message) string {
	fields := m.ProtoReflect().Descriptor().Fields()
	for _, n := range []protoreflect.Name{"name", "cluster_name"} {
		if fd := fields.ByName(n); fd != nil {
			return m.ProtoReflect().Get(fd).String()
		}
	}
	return ""
}

// TestDeterministic generates twice from separately built push contexts and
// compares the deterministic wire encoding.
func TestDeterministic(t *testing.T) {
	opts := proto.MarshalOptions{Deterministic: true}
	for _, fp := range fixtureProxies {
		a, err := generateAll(bookinfoPush(), fp.proxy(), fp.grpcNames...)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := generateAll(bookinfoPush(), fp.proxy(), fp.grpcNames...)
		for _, typ := range allTypes {
			if len(a[typ]) != len(b[typ]) {
				t.Fatalf("%s %s: %d vs %d resources", fp.name, typ, len(a[typ]), len(b[typ]))
			}
			for i := range a[typ] {
				x, _ := opts.Marshal(a[typ][i].Resource)
				y, _ := opts.Marshal(b[typ][i].Resource)
				if a[typ][i].Name != b[typ][i].Name || !bytes.Equal(x, y) {
					t.Errorf("%s %s %s: not byte-identical across runs", fp.name, typ, a[typ][i].Name)
				}
				if i > 0 && a[typ][i-1].Name >= a[typ][i].Name {
					t.Errorf("%s %s: not sorted/unique at %q", fp.name, typ, a[typ][i].Name)
				}
			}
		}
	}
}

// TestConcurrentProxiesShareCaches generates for every fixture proxy from
// several goroutines on one push context (the ADS server's pattern) and
// checks each result against a fresh push context's.
func TestConcurrentProxiesShareCaches(t *testing.T) {
	shared := bookinfoPush()
	opts := proto.MarshalOptions{Deterministic: true}
	errs := make(chan string, 64)
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, fp := range fixtureProxies {
				got, err := generateAll(shared, fp.proxy(), fp.grpcNames...)
				if err != nil {
					errs <- err.Error()
					return
				}
				want, _ := generateAll(bookinfoPush(), fp.proxy(), fp.grpcNames...)
				for _, typ := range allTypes {
					for i := range want[typ] {
						x, _ := opts.Marshal(got[typ][i].Resource)
						y, _ := opts.Marshal(want[typ][i].Resource)
						if !bytes.Equal(x, y) {
							errs <- fp.name + " " + want[typ][i].Name
						}
					}
				}
			}
		}()
	}
	for w := 0; w < 4; w++ {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Errorf("shared push context differs: %s", e)
	}
}
