// Package rlactiongen compiles Envoy's rate_limits actions from
// go-control-plane's generated messages. mast-proxy decodes them from the
// wire (rlaction.ParseWire); this package is the reference that decoder is
// tested against, and only tests import it, so the generated route package
// stays out of the proxy's binary.
package rlactiongen

import (
	"fmt"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction"
)

// Parse compiles rate_limits; errors name the field of anything not honoured.
func Parse(field string, rls []*routev3.RateLimit) ([]rlaction.Descriptor, error) {
	out := make([]rlaction.Descriptor, 0, len(rls))
	for i, rl := range rls {
		p := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case rl.GetStage() != nil && rl.GetStage().GetValue() != 0:
			return nil, fmt.Errorf("%s.stage: only stage 0 is supported", p)
		case rl.GetDisableKey() != "":
			return nil, fmt.Errorf("%s.disable_key: not supported (no runtime)", p)
		case rl.GetLimit() != nil:
			return nil, fmt.Errorf("%s.limit: not supported", p)
		case rl.GetHitsAddend() != nil:
			return nil, fmt.Errorf("%s.hits_addend: not supported", p)
		case rl.GetApplyOnStreamDone():
			return nil, fmt.Errorf("%s.apply_on_stream_done: not supported", p)
		case rl.GetXRatelimitOption() != routev3.RateLimit_UNSPECIFIED:
			return nil, fmt.Errorf("%s.x_ratelimit_option: not supported", p)
		case len(rl.GetActions()) == 0:
			return nil, fmt.Errorf("%s.actions: empty", p)
		}
		var d rlaction.Descriptor
		for j, a := range rl.GetActions() {
			ap := fmt.Sprintf("%s.actions[%d]", p, j)
			switch s := a.GetActionSpecifier().(type) {
			case *routev3.RateLimit_Action_GenericKey_:
				if s.GenericKey.GetDefaultValue() != "" {
					return nil, fmt.Errorf("%s.generic_key.default_value: not supported", ap)
				}
				if s.GenericKey.GetDescriptorValue() == "" {
					return nil, fmt.Errorf("%s.generic_key.descriptor_value: empty", ap)
				}
				d.AddGenericKey(s.GenericKey.GetDescriptorKey(), s.GenericKey.GetDescriptorValue())
			case *routev3.RateLimit_Action_RequestHeaders_:
				h := s.RequestHeaders
				if h.GetHeaderName() == "" || h.GetDescriptorKey() == "" {
					return nil, fmt.Errorf("%s.request_headers: header_name and descriptor_key are required", ap)
				}
				d.AddRequestHeader(h.GetDescriptorKey(), h.GetHeaderName(), h.GetSkipIfAbsent())
			case *routev3.RateLimit_Action_RemoteAddress_:
				d.AddRemoteAddress()
			default:
				return nil, rlaction.Unsupported(ap, actionName(a))
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// actionName names the action_specifier member a sets ("none").
func actionName(a *routev3.RateLimit_Action) string {
	m := a.ProtoReflect()
	if fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("action_specifier")); fd != nil {
		return string(fd.Name())
	}
	return "none"
}
