// Package stdio is Mixer's stdio adapter: logentry (and metric) instances
// written to mastd's standard output or a file, as JSON or console lines.
package stdio

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/mixer/template"
)

// Params are the adapter's params.
type Params struct {
	LogStream                  string            `json:"logStream"` // STDOUT (default), STDERR, FILE, ROTATED_FILE
	SeverityLevels             map[string]string `json:"severityLevels"`
	MetricLevel                string            `json:"metricLevel"`
	OutputLevel                string            `json:"outputLevel"`
	OutputAsJSON               *bool             `json:"outputAsJson"`
	OutputPath                 string            `json:"outputPath"`
	MaxMegabytesBeforeRotation int               `json:"maxMegabytesBeforeRotation"`
	MaxDaysBeforeRotation      int               `json:"maxDaysBeforeRotation"`
	MaxRotatedFiles            int               `json:"maxRotatedFiles"`
}

// Info describes the adapter.
var Info = &adapter.Info{Name: "stdio", Templates: []string{"logentry", "metric"}, Validate: validate, New: New}

func parse(params *structpb.Struct) (*Params, error) {
	var p Params
	if err := adapter.Decode(params, &p, "severityLevels"); err != nil {
		return nil, err
	}
	switch p.LogStream {
	case "", "STDOUT", "STDERR":
	case "FILE":
		if p.OutputPath == "" {
			return nil, fmt.Errorf("params.outputPath: required with logStream FILE")
		}
	case "ROTATED_FILE":
		return nil, fmt.Errorf("params.logStream: ROTATED_FILE is not supported (use FILE and an external rotator)")
	default:
		return nil, fmt.Errorf("params.logStream: %q: want STDOUT, STDERR or FILE", p.LogStream)
	}
	return &p, nil
}

func validate(params *structpb.Struct) error { _, err := parse(params); return err }

// Handler writes entries.
type Handler struct {
	p    *Params
	mu   sync.Mutex
	w    io.Writer
	file *os.File
	now  func() time.Time
}

var _ adapter.Reporter = (*Handler)(nil)

// New opens the output.
func New(env adapter.Env, _ string, params *structpb.Struct) (adapter.Handler, error) {
	p, err := parse(params)
	if err != nil {
		return nil, err
	}
	h := &Handler{p: p, w: env.Stdout, now: env.Now}
	if h.now == nil {
		h.now = time.Now
	}
	switch p.LogStream {
	case "STDERR":
		h.w = os.Stderr
	case "FILE":
		f, err := os.OpenFile(p.OutputPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("params.outputPath: %v", err)
		}
		h.w, h.file = f, f
	}
	if h.w == nil {
		h.w = os.Stdout
	}
	return h, nil
}

// HandleReport implements adapter.Reporter.
func (h *Handler) HandleReport(_ context.Context, insts []*template.Instance) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, in := range insts {
		entry := map[string]any{"instance": in.Name}
		var fields map[string]any
		switch in.Template {
		case "logentry":
			fields, _ = in.Fields["variables"].(map[string]any)
			if s, ok := in.Fields["severity"]; ok {
				entry["level"] = h.level(attribute.String(s))
			} else {
				entry["level"] = "info"
			}
			if ts, ok := in.Fields["timestamp"].(time.Time); ok {
				entry["time"] = ts.UTC().Format(time.RFC3339Nano)
			}
		default:
			fields, _ = in.Fields["dimensions"].(map[string]any)
			entry["value"] = attribute.String(in.Fields["value"])
			entry["level"] = "info"
		}
		if _, ok := entry["time"]; !ok {
			entry["time"] = h.now().UTC().Format(time.RFC3339Nano)
		}
		for k, v := range fields {
			entry[k] = attribute.String(v)
		}
		if h.p.OutputAsJSON == nil || *h.p.OutputAsJSON {
			b, err := json.Marshal(entry)
			if err != nil {
				return err
			}
			if _, err := h.w.Write(append(b, '\n')); err != nil {
				return err
			}
			continue
		}
		keys := make([]string, 0, len(entry))
		for k := range entry {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%v ", k, entry[k])
		}
		if _, err := io.WriteString(h.w, strings.TrimSpace(b.String())+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) level(s string) string {
	if l, ok := h.p.SeverityLevels[s]; ok {
		return strings.ToLower(l)
	}
	return strings.ToLower(s)
}

// Close closes the file, if any.
func (h *Handler) Close() error {
	if h.file != nil {
		return h.file.Close()
	}
	return nil
}
