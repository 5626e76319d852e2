// Package denier is Mixer's denier adapter: every check (and quota) it
// handles fails with the configured status.
package denier

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/template"
)

// Params are Istio's denier params.
type Params struct {
	Status struct {
		Code    int32  `json:"code"`
		Message string `json:"message"`
		Details []any  `json:"details"`
	} `json:"status"`
	ValidDuration adapter.Duration `json:"validDuration"`
	ValidUseCount int32            `json:"validUseCount"`
}

// Info describes the adapter.
var Info = &adapter.Info{Name: "denier", Templates: []string{"checknothing", "listentry", "quota"}, Validate: validate, New: New}

func parse(params *structpb.Struct) (*Params, error) {
	var p Params
	if err := adapter.Decode(params, &p); err != nil {
		return nil, err
	}
	if p.Status.Code < 0 || p.Status.Code > 16 {
		return nil, fmt.Errorf("params.status.code: %d is not a google.rpc.Code", p.Status.Code)
	}
	if len(p.Status.Details) > 0 {
		return nil, fmt.Errorf("params.status.details: not supported")
	}
	if p.ValidDuration < 0 || p.ValidUseCount < 0 {
		return nil, fmt.Errorf("params.validDuration, validUseCount: must not be negative")
	}
	if p.ValidDuration == 0 {
		p.ValidDuration = adapter.Duration(5 * time.Second)
	}
	if p.ValidUseCount == 0 {
		p.ValidUseCount = 1000
	}
	return &p, nil
}

func validate(params *structpb.Struct) error { _, err := parse(params); return err }

// Handler denies.
type Handler struct {
	p *Params
}

var (
	_ adapter.Checker = (*Handler)(nil)
	_ adapter.Quotaer = (*Handler)(nil)
)

// New builds a denier.
func New(_ adapter.Env, _ string, params *structpb.Struct) (adapter.Handler, error) {
	p, err := parse(params)
	if err != nil {
		return nil, err
	}
	return &Handler{p: p}, nil
}

// HandleCheck implements adapter.Checker.
func (h *Handler) HandleCheck(context.Context, *template.Instance) (adapter.CheckResult, error) {
	return adapter.CheckResult{Status: adapter.Status{Code: codes.Code(h.p.Status.Code), Message: h.p.Status.Message},
		ValidDuration: h.p.ValidDuration.D(), ValidUseCount: h.p.ValidUseCount}, nil
}

// HandleQuota implements adapter.Quotaer: nothing is granted.
func (h *Handler) HandleQuota(context.Context, *template.Instance, adapter.QuotaArgs) (adapter.QuotaResult, error) {
	return adapter.QuotaResult{Status: adapter.Status{Code: codes.Code(h.p.Status.Code), Message: h.p.Status.Message},
		ValidDuration: h.p.ValidDuration.D()}, nil
}

// Close implements adapter.Handler.
func (h *Handler) Close() error { return nil }
