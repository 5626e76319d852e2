// Package h2frame reads HTTP/2 frames for mast-proxy's HTTP/2 server and
// client without a new value per frame. x/net's Framer reuses only DATA
// frames; every HEADERS, CONTINUATION, WINDOW_UPDATE, RST_STREAM and PING
// it reads is a new value. Reader lets the Framer read each frame header
// (its size limit and its HEADERS/CONTINUATION order checks stay), parses
// those five kinds itself into one reused Frame with x/net's checks and
// errors, and hands every other frame to the Framer.
package h2frame

import (
	"encoding/binary"
	"io"

	"golang.org/x/net/http2"
)

// Frame is the frame read last, valid until the next Read. For HEADERS,
// CONTINUATION, WINDOW_UPDATE, RST_STREAM and PING the fields below the
// header hold it and Other is nil; any other frame is Other, as x/net's
// Framer returns it.
type Frame struct {
	http2.FrameHeader
	Other http2.Frame

	// Fragment is a HEADERS or CONTINUATION frame's header block fragment
	// (padding removed).
	Fragment []byte
	// Priority is a HEADERS frame's priority (the PRIORITY flag is set).
	Priority http2.PriorityParam
	// Increment is a WINDOW_UPDATE's window increment.
	Increment uint32
	// ErrCode is a RST_STREAM's error code.
	ErrCode http2.ErrCode
	// Data is a PING's opaque data.
	Data [8]byte
}

// HasPriority reports whether a HEADERS frame carries priority.
func (f *Frame) HasPriority() bool { return f.Flags.Has(http2.FlagHeadersPriority) }

// StreamEnded reports whether a HEADERS frame has END_STREAM.
func (f *Frame) StreamEnded() bool { return f.Flags.Has(http2.FlagHeadersEndStream) }

// HeadersEnded reports whether a HEADERS or CONTINUATION frame has
// END_HEADERS.
func (f *Frame) HeadersEnded() bool { return f.Flags.Has(http2.FlagHeadersEndHeaders) }

// IsAck reports whether a PING is an acknowledgement.
func (f *Frame) IsAck() bool { return f.Flags.Has(http2.FlagPingAck) }

// keptBuf is the largest payload buffer a Reader keeps between frames.
const keptBuf = 16 << 10

// Reader reads frames through a Framer and the reader it reads from.
type Reader struct {
	fr  *http2.Framer
	r   io.Reader
	buf []byte
	f   Frame
}

// Reset makes rd read with fr, whose frames come from r (the io.Reader
// given to http2.NewFramer).
func (rd *Reader) Reset(fr *http2.Framer, r io.Reader) {
	rd.fr, rd.r = fr, r
}

// Release drops the payload buffer (an idle connection keeps none).
func (rd *Reader) Release() {
	rd.buf = nil
	rd.f = Frame{}
}

// Read reads the next frame. Its errors are the Framer's:
// http2.ConnectionError and http2.StreamError for malformed frames,
// http2.ErrFrameTooLarge, and the reader's.
func (rd *Reader) Read() (*Frame, error) {
	fh, err := rd.fr.ReadFrameHeader()
	if err != nil {
		return nil, err
	}
	switch fh.Type {
	case http2.FrameHeaders, http2.FrameContinuation, http2.FrameWindowUpdate, http2.FrameRSTStream, http2.FramePing:
	default:
		other, err := rd.fr.ReadFrameForHeader(fh)
		if err != nil {
			return nil, err
		}
		rd.f = Frame{FrameHeader: fh, Other: other}
		return &rd.f, nil
	}
	p := rd.payload(int(fh.Length))
	if _, err := io.ReadFull(rd.r, p); err != nil {
		return nil, err
	}
	rd.f = Frame{FrameHeader: fh}
	if err := parse(&rd.f, p); err != nil {
		return nil, err
	}
	return &rd.f, nil
}

// payload returns a buffer of n bytes, kept for the next frames when small.
func (rd *Reader) payload(n int) []byte {
	if n <= cap(rd.buf) {
		return rd.buf[:n]
	}
	if n > keptBuf {
		return make([]byte, n)
	}
	rd.buf = make([]byte, n, max(n, 512))
	return rd.buf
}

// parse fills f from the payload p of a frame of one of Reader's own
// kinds, with x/net's checks, in its order, and its errors.
func parse(f *Frame, p []byte) error {
	id := f.StreamID
	switch f.Type {
	case http2.FrameHeaders:
		if id == 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		var pad int
		if f.Flags.Has(http2.FlagHeadersPadded) {
			if len(p) < 1 {
				return io.ErrUnexpectedEOF
			}
			pad, p = int(p[0]), p[1:]
		}
		if f.Flags.Has(http2.FlagHeadersPriority) {
			if len(p) < 5 {
				return io.ErrUnexpectedEOF
			}
			v := binary.BigEndian.Uint32(p)
			f.Priority.StreamDep = v & 0x7fffffff
			f.Priority.Exclusive = v != f.Priority.StreamDep
			f.Priority.Weight = p[4]
			p = p[5:]
		}
		if len(p) < pad {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		f.Fragment = p[:len(p)-pad]
	case http2.FrameContinuation:
		if id == 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		f.Fragment = p
	case http2.FrameWindowUpdate:
		if len(p) != 4 {
			return http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		f.Increment = binary.BigEndian.Uint32(p) & 0x7fffffff
		if f.Increment == 0 {
			if id == 0 {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
	case http2.FrameRSTStream:
		if len(p) != 4 {
			return http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		if id == 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		f.ErrCode = http2.ErrCode(binary.BigEndian.Uint32(p))
	case http2.FramePing:
		if len(p) != 8 {
			return http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		if id != 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		copy(f.Data[:], p)
	}
	return nil
}
