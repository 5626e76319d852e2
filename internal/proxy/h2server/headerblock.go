package h2server

import (
	"errors"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock is a HEADERS frame and its CONTINUATIONs being decoded into
// a field list the connection reuses (no frame, closure or slice per
// block, unlike Framer.ReadMetaHeaders, whose checks it keeps).
type headerBlock struct {
	id          uint32
	endStream   bool
	hasPriority bool
	dep         uint32
	fields      []hpack.HeaderField
	remain      uint32 // header list bytes still accepted
	truncated   bool   // the list exceeded the limit
	invalid     bool   // a field was malformed
	sawRegular  bool
	open        bool // CONTINUATION frames are expected
}

var errHeaderListTooLarge = errors.New("http2: header block far over the header list limit")

// emit takes one decoded field (the decoder's emit function, bound once).
func (c *conn) emit(f hpack.HeaderField) {
	b := &c.hb
	if b.invalid || b.truncated {
		return
	}
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		b.invalid = true
		return
	}
	if len(f.Name) > 0 && f.Name[0] == ':' {
		if b.sawRegular {
			b.invalid = true
			return
		}
	} else {
		b.sawRegular = true
		if !validWireName(f.Name) {
			b.invalid = true
			return
		}
	}
	if size := f.Size(); size > b.remain {
		b.truncated = true
		b.remain = 0
		return
	} else {
		b.remain -= size
	}
	b.fields = append(b.fields, f)
}

// validWireName: a token in lower case (RFC 9113 section 8.2.1).
func validWireName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !httpguts.IsTokenRune(rune(c)) || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// fragment decodes one header block fragment; done reports the end of
// the block.
func (c *conn) fragment(frag []byte, end bool) (done bool, err error) {
	b := &c.hb
	// A client far over the limit is not decoded further (CONTINUATION
	// flood): Framer.ReadMetaHeaders' rule.
	if int64(len(frag)) > 2*int64(b.remain) || (b.invalid && b.open) {
		return false, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if _, err := c.dec.Write(frag); err != nil {
		return false, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		b.open = true
		return false, nil
	}
	b.open = false
	if err := c.dec.Close(); err != nil {
		return false, http2.ConnectionError(http2.ErrCodeCompression)
	}
	return true, nil
}

// startBlock begins decoding a HEADERS frame.
func (c *conn) startBlock(f *http2.HeadersFrame) {
	c.hb = headerBlock{id: f.StreamID, endStream: f.StreamEnded(), hasPriority: f.HasPriority(), dep: f.Priority.StreamDep,
		fields: c.hb.fields[:0], remain: uint32(max(c.cfg.MaxHeaderBytes, 1))}
}
