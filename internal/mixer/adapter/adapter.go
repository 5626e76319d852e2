// Package adapter is the one interface Mixer's adapters implement, with an
// explicit lifecycle: Info.New builds a Handler from a handler resource's
// params when a configuration is compiled; the runtime calls it for the
// instances its rules send; Close is called once when the configuration
// that built it is replaced. Info.Validate decodes params without side
// effects (mast validate).
package adapter

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/template"
)

// Env is what the Mixer lends adapters.
type Env struct {
	Logger *slog.Logger
	// Metrics is where metric-kind adapters (prometheus) register; mastd
	// serves it on its monitoring port.
	Metrics prometheus.Registerer
	// Stdout is where stdio writes unless its params name a file.
	Stdout io.Writer
	// HTTP fetches lists and sends spans (bounded timeouts).
	HTTP *http.Client
	Now  func() time.Time
}

// Handler is one configured adapter (a handler resource).
type Handler interface {
	Close() error
}

// Status is a check or quota outcome in google.rpc terms.
type Status struct {
	Code    codes.Code
	Message string
}

// CheckResult is what a check-kind handler answers.
type CheckResult struct {
	Status        Status
	ValidDuration time.Duration
	ValidUseCount int32
}

// Checker handles check-variety templates (checknothing, listentry,
// authorization, apikey).
type Checker interface {
	Handler
	HandleCheck(ctx context.Context, inst *template.Instance) (CheckResult, error)
}

// QuotaArgs are the caller's quota parameters.
type QuotaArgs struct {
	DeduplicationID string
	Amount          int64
	BestEffort      bool
}

// QuotaResult is what a quota handler answers.
type QuotaResult struct {
	Status        Status
	Granted       int64
	ValidDuration time.Duration
}

// Quotaer handles the quota template.
type Quotaer interface {
	Handler
	HandleQuota(ctx context.Context, inst *template.Instance, args QuotaArgs) (QuotaResult, error)
}

// Reporter handles report-variety templates (metric, logentry, tracespan,
// reportnothing).
type Reporter interface {
	Handler
	HandleReport(ctx context.Context, insts []*template.Instance) error
}

// Info describes one adapter kind.
type Info struct {
	Name      string
	Templates []string
	// Validate decodes params; errors name the field ("params.entryType: ...").
	Validate func(params *structpb.Struct) error
	// New builds a handler; name is its full name (name.kind.namespace).
	New func(env Env, name string, params *structpb.Struct) (Handler, error)
}

// Supports reports whether the adapter takes instances of template t.
func (i *Info) Supports(t string) bool {
	for _, x := range i.Templates {
		if x == t {
			return true
		}
	}
	return false
}
