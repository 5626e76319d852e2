package ads

import (
	"context"
)

// sendQuota is grpc-go's write quota of a server stream (defaultWriteQuota
// in google.golang.org/grpc/internal/transport; no option sets it): Send
// takes quota for the message it queues, the transport gives it back as it
// writes the bytes to the connection, and Send blocks only when, at its
// start, the bytes queued and not yet written reach the quota.
// TestSendQuotaIsGRPCWriteQuota holds this value to grpc-go's behaviour.
const sendQuota = 64 << 10

// maxInflight bounds the responses an inflight list records one by one.
const maxInflight = 32

// inflight is what a connection has sent and its client has not yet
// acknowledged, with an upper bound of each response's bytes on the stream
// (message plus gRPC's 5-byte header). A client answers a response (ACK or
// NACK) only once it has received all of it, and so every response before
// it on the stream: by then the transport has written those bytes and given
// their quota back. While the bytes recorded here are below sendQuota a Send
// cannot block, so the loop sends itself rather than through its outbox
// goroutine (two goroutine hand-offs per response fewer). Nonces are
// unpredictable (nextNonce), so a client cannot acknowledge a response it
// has not read and make the loop block in Send. Loop only.
type inflight struct {
	sent  []sentResponse // in send order
	bytes int
}

type sentResponse struct {
	nonce string
	bytes int
}

// add records a response handed to gRPC. Beyond maxInflight the oldest
// record is merged into the next one: an answer to the next one still
// clears both, and an answer naming the merged nonce clears nothing, which
// errs on the side of the outbox.
func (f *inflight) add(nonce string, bytes int) {
	if len(f.sent) == maxInflight {
		f.sent[1].bytes += f.sent[0].bytes
		n := copy(f.sent, f.sent[1:])
		f.sent = f.sent[:n]
	}
	f.sent = append(f.sent, sentResponse{nonce: nonce, bytes: bytes})
	f.bytes += bytes
}

// answered notes a request naming nonce (an ACK or a NACK, current or
// stale): that response and every one sent before it have been received.
// A nonce not recorded changes nothing.
func (f *inflight) answered(nonce string) {
	if nonce == "" {
		return
	}
	for i := len(f.sent) - 1; i >= 0; i-- {
		if f.sent[i].nonce != nonce {
			continue
		}
		for _, r := range f.sent[:i+1] {
			f.bytes -= r.bytes
		}
		n := copy(f.sent, f.sent[i+1:])
		clear(f.sent[n:])
		f.sent = f.sent[:n]
		return
	}
}

// direct reports whether a Send now cannot block.
func (f *inflight) direct() bool { return f.bytes < sendQuota }

// deliver hands m, a response with the given nonce and wire bound, to gRPC:
// on the calling (loop) goroutine when the Send cannot block, through the
// outbox otherwise. slot is freed either way. The response is recorded
// before it is sent: its ACK may be handled (absorbACK) before Send returns.
func (o *outbox[T]) deliver(ctx context.Context, c *conn, m *T, nonce string, bound int, slot *pushSlot) error {
	c.mu.Lock()
	direct := c.inflight.direct()
	c.inflight.add(nonce, bound)
	c.mu.Unlock()
	if direct {
		slot.release()
		return o.sendNow(m)
	}
	return o.send(ctx, c.s.closing, m, slot)
}

// Upper bounds of the protobuf framing around a field's value: a tag of a
// field numbered below 16 and a length of at most 5 bytes.
const (
	fieldOverhead = 1 + 5
	grpcHeader    = 5
)

// sotwWireBound is an upper bound of r's bytes on the stream: its encoding
// plus gRPC's message header (TestWireBounds).
func sotwWireBound(r *sotwResponse) int {
	m := r.msg
	n := grpcHeader + 2 + 3*fieldOverhead + len(m.VersionInfo) + len(m.TypeUrl) + len(m.Nonce)
	for _, a := range m.Resources {
		n += 3*fieldOverhead + len(a.GetTypeUrl()) + len(a.GetValue())
	}
	for _, p := range r.pieced {
		n += piecesLen(p.pieces)
	}
	return n
}

// deltaWireBound is sotwWireBound for a DeltaDiscoveryResponse.
func deltaWireBound(r *deltaResponse) int {
	m := r.msg
	n := grpcHeader + 3*fieldOverhead + len(m.SystemVersionInfo) + len(m.TypeUrl) + len(m.Nonce)
	for _, r := range m.Resources {
		n += 6*fieldOverhead + len(r.GetName()) + len(r.GetVersion()) + len(r.GetResource().GetTypeUrl()) + len(r.GetResource().GetValue())
	}
	for _, r := range m.RemovedResources {
		n += fieldOverhead + len(r)
	}
	for _, p := range r.pieced {
		n += piecesLen(p.pieces)
	}
	return n
}
