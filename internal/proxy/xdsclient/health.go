package xdsclient

import (
	"sync"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// HealthInfoType is the type URL of istio-agent's health reports: a
// DiscoveryRequest of this type without error_detail says the workload's
// readiness probe passes; with error_detail (code INTERNAL), that it fails,
// the message saying why. The control plane answers nothing.
const HealthInfoType = "type.googleapis.com/istio.v1.HealthInformation"

// health keeps the latest report and the current stream's sender: a report
// goes out at once when a stream is up, and again on every new stream (after
// its first requests), as istio-agent resends its last one on reconnection.
type health struct {
	mu     sync.Mutex
	latest *healthReport
	sotw   func(*xdswire.Request)
	delta  func(*xdswire.DeltaRequest)
}

type healthReport struct {
	healthy bool
	message string
}

// ReportHealth sends the workload's health to the control plane over the
// ADS stream, now if connected and on every reconnection.
func (c *Client) ReportHealth(healthy bool, message string) {
	h := &c.health
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latest = &healthReport{healthy, message}
	h.sendLocked()
}

func (h *health) sendLocked() {
	r := h.latest
	if r == nil {
		return
	}
	var detail *xdswire.Status
	if !r.healthy {
		detail = &xdswire.Status{Code: int32(rpc.Internal), Message: r.message}
	}
	switch {
	case h.sotw != nil:
		h.sotw(&xdswire.Request{TypeURL: HealthInfoType, ErrorDetail: detail})
	case h.delta != nil:
		h.delta(&xdswire.DeltaRequest{TypeURL: HealthInfoType, ErrorDetail: detail})
	}
}

// attach makes a new stream's senders current and sends the latest report
// on it; the returned func detaches them when the stream ends.
func (h *health) attach(sotw func(*xdswire.Request), delta func(*xdswire.DeltaRequest)) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sotw, h.delta = sotw, delta
	h.sendLocked()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.sotw, h.delta = nil, nil
	}
}
