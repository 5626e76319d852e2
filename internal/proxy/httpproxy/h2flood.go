package httpproxy

import (
	"bufio"
	"errors"
	"net"
	"time"
)

// Flood limits of one HTTP/2 connection, Envoy's defaults where it has
// them.
const (
	// prematureResetMinStreams and the 50% ratio are Envoy's
	// premature_reset_total_stream_count and its rule: a connection whose
	// client reset more than half of at least this many streams is closed
	// (rapid reset, CVE-2023-44487).
	prematureResetMinStreams = 500
	// controlBurst and controlPerSecond bound control frames from a client
	// (SETTINGS, PRIORITY, empty DATA without END_STREAM): a token bucket
	// generous for any real client, which sends a handful, and cut for
	// floods (CVE-2019-9515, -9518). PINGs are not counted: grpc-go's
	// client pings once per response it reads, and Go's server cuts a
	// client that leaves too many ACKs unread (CVE-2019-9512) itself.
	controlBurst     = 1000
	controlPerSecond = 100
)

// errH2Flood ends a connection that flooded.
var errH2Flood = errors.New("http2: connection closed: flood")

// floodConn reads an HTTP/2 connection's inbound bytes for Go's HTTP/2
// server and parses only the 9-byte frame headers on the way, to count
// what Go's server does not bound: streams reset by the client and control
// frames. A flooding connection is closed. Go's server reads from one
// goroutine, so floodConn needs no lock.
type floodConn struct {
	net.Conn
	r *bufio.Reader
	// onFlood is called once when the connection is cut, with the reason.
	onFlood func(reason string)

	preface int // bytes of the client preface still to pass
	hdr     [9]byte
	hn      int // bytes of the current frame header seen
	skip    int // payload bytes of the current frame still to pass

	streams, resets uint64
	tokens          float64
	last            time.Time
	cut             bool
}

func newFloodConn(nc net.Conn, br *bufio.Reader, onFlood func(string)) *floodConn {
	return &floodConn{Conn: nc, r: br, onFlood: onFlood, preface: len(h2Preface), tokens: controlBurst}
}

func (c *floodConn) Read(p []byte) (int, error) {
	if c.cut {
		return 0, errH2Flood
	}
	n, err := c.r.Read(p)
	if reason := c.scan(p[:n]); reason != "" {
		c.cut = true
		c.onFlood(reason)
		c.Conn.Close()
		return 0, errH2Flood
	}
	return n, err
}

// scan follows the frame boundaries in b and returns why the connection
// must be cut, "" if it may go on.
func (c *floodConn) scan(b []byte) string {
	for len(b) > 0 {
		switch {
		case c.preface > 0:
			k := min(c.preface, len(b))
			c.preface -= k
			b = b[k:]
		case c.skip > 0:
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
		default:
			k := copy(c.hdr[c.hn:], b)
			c.hn += k
			b = b[k:]
			if c.hn < len(c.hdr) {
				return ""
			}
			c.hn = 0
			length := int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
			c.skip = length
			if r := c.frame(c.hdr[3], c.hdr[4], length); r != "" {
				return r
			}
		}
	}
	return ""
}

// Frame types and flags (RFC 9113 section 6).
const (
	frameData      = 0x0
	frameHeaders   = 0x1
	framePriority  = 0x2
	frameRSTStream = 0x3
	frameSettings  = 0x4
	flagEndStream  = 0x1
)

func (c *floodConn) frame(typ, flags byte, length int) string {
	switch typ {
	case frameHeaders:
		c.streams++
		return ""
	case frameRSTStream:
		c.resets++
		if c.streams >= prematureResetMinStreams && 2*c.resets > c.streams {
			return "rapid reset: the client reset most of its streams"
		}
		return ""
	case frameData:
		if length > 0 || flags&flagEndStream != 0 {
			return ""
		}
	case frameSettings, framePriority:
	default:
		return ""
	}
	now := time.Now()
	if !c.last.IsZero() {
		c.tokens = min(controlBurst, c.tokens+now.Sub(c.last).Seconds()*controlPerSecond)
	}
	c.last = now
	c.tokens--
	if c.tokens < 0 {
		return "control frame flood (SETTINGS, PRIORITY or empty DATA)"
	}
	return ""
}
