package h2server

import "time"

// Flood limits of one HTTP/2 connection, Envoy's defaults where it has
// them.
const (
	// prematureResetMinStreams and the 50% ratio are Envoy's
	// premature_reset_total_stream_count and its rule: a connection whose
	// client reset more than half of at least this many streams is closed
	// (rapid reset, CVE-2023-44487).
	prematureResetMinStreams = 500
	// controlBurst and controlPerSecond bound control frames from a client
	// (PING, SETTINGS, PRIORITY, empty DATA without END_STREAM): a token
	// bucket generous for any real client, and cut for floods
	// (CVE-2019-9512, -9515, -9518). Each HEADERS or DATA frame sent to the
	// client adds a token for a PING: grpc-go's client pings once per DATA
	// frame it reads while no PING of its is unanswered (its BDP
	// estimator), thousands of times a second on a busy connection, which
	// the bucket alone cut every few hundred milliseconds.
	controlBurst     = 1000
	controlPerSecond = 100
	// maxQueuedControl bounds the control frames (PING and SETTINGS ACKs,
	// RST_STREAM, WINDOW_UPDATE) queued for a client and not yet written
	// (Envoy's max_outbound_control_frames): a client that does not read
	// its ACKs is cut once that many wait, whatever the bucket allows
	// (CVE-2019-9512).
	maxQueuedControl = 1000
)

// flood counts, on the connection's reader, what a flooding client sends:
// streams it opened and reset, and control frames. A CONTINUATION flood
// is cut by the Framer's header list limit.
type flood struct {
	streams, resets uint64
	tokens          float64
	last            time.Time
	sent            uint64 // conn.sent at the last PING
}

// stream counts a new stream.
func (f *flood) stream() { f.streams++ }

// reset counts a RST_STREAM from the client; it returns why the connection
// must be cut, or "".
func (f *flood) reset() string {
	f.resets++
	if f.streams >= prematureResetMinStreams && 2*f.resets > f.streams {
		return "rapid reset: the client reset most of its streams"
	}
	return ""
}

// control counts a control frame; it returns why the connection must be
// cut, or "".
func (f *flood) control() string { return f.take(0) }

// ping counts a PING, sent being how many HEADERS and DATA frames the
// connection has written to the client so far: each adds a token.
func (f *flood) ping(sent uint64) string {
	credit := float64(sent - f.sent)
	f.sent = sent
	return f.take(credit)
}

// take adds credit to the bucket and takes a token from it.
func (f *flood) take(credit float64) string {
	now := time.Now()
	if f.last.IsZero() {
		f.tokens = controlBurst
	} else {
		f.tokens += now.Sub(f.last).Seconds() * controlPerSecond
	}
	f.tokens = min(controlBurst, f.tokens+credit)
	f.last = now
	f.tokens--
	if f.tokens < 0 {
		return "control frame flood (PING, SETTINGS, PRIORITY or empty DATA)"
	}
	return ""
}
