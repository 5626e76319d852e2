// Package headerblock decodes HTTP/2 header blocks (a HEADERS frame and
// its CONTINUATIONs) into a field list reused from block to block, with a
// long-lived HPACK decoder whose emit function is bound once: no frame,
// closure or slice per block, unlike x/net's Framer.ReadMetaHeaders, whose
// checks it keeps (field validity, pseudo-headers first, the header list
// limit, the CONTINUATION-flood cut). mast-proxy's HTTP/2 server and
// client both read their peers' header blocks with it.
package headerblock

import (
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Block is the header block being read on one connection.
type Block struct {
	ID          uint32
	EndStream   bool
	HasPriority bool
	Dep         uint32
	// Fields are the decoded fields, valid until the next Start.
	Fields []hpack.HeaderField
	// Truncated: the list exceeded the limit (its fields are incomplete).
	Truncated bool
	// Invalid: a field was malformed (a stream error).
	Invalid bool

	dec        *hpack.Decoder
	limit      uint32
	remain     uint32 // header list bytes still accepted
	remainTr   uint32 // the same for "trailer" fields (x/net's separate budget)
	sawRegular bool
	open       bool // CONTINUATION frames are expected
}

// Init prepares b for a connection whose header lists may hold up to
// limit bytes (HPACK size).
func (b *Block) Init(limit int) {
	b.limit = uint32(max(limit, 1))
	b.dec = hpack.NewDecoder(4096, b.emit)
	b.dec.SetMaxStringLength(int(b.limit))
}

// emit takes one decoded field. After an invalid field or past the limit
// the decoder stops emitting (and decoding strings), as in x/net.
func (b *Block) emit(f hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		b.invalidate()
		return
	}
	if len(f.Name) > 0 && f.Name[0] == ':' {
		if b.sawRegular {
			b.invalidate()
			return
		}
	} else {
		b.sawRegular = true
		if !validWireName(f.Name) {
			b.invalidate()
			return
		}
	}
	// x/net's accounting: "trailer" fields have a budget of their own,
	// each name they list counted as a field.
	remain, size := &b.remain, f.Size()
	if f.Name == "trailer" {
		n := uint32(strings.Count(f.Value, ",") + 1)
		remain, size = &b.remainTr, uint32(len(f.Value))-n+1+n*hpack.HeaderField{}.Size()
	}
	if size > *remain {
		b.Truncated = true
		b.remain, b.remainTr = 0, 0
		b.dec.SetEmitEnabled(false)
		return
	}
	*remain -= size
	b.Fields = append(b.Fields, f)
}

func (b *Block) invalidate() {
	b.Invalid = true
	b.dec.SetEmitEnabled(false)
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

// Open reports whether a block is unfinished (CONTINUATION frames are
// expected).
func (b *Block) Open() bool { return b.open }

// Release drops the last block's fields (an idle connection keeps none);
// the decoder's state stays.
func (b *Block) Release() {
	clear(b.Fields)
	b.Fields = nil
}

// Start begins decoding the block of a HEADERS frame on stream id (its
// END_STREAM flag, and its priority's dependency when it has one);
// Fragment must follow with its fragment.
func (b *Block) Start(id uint32, endStream, hasPriority bool, dep uint32) {
	b.ID, b.EndStream, b.HasPriority, b.Dep = id, endStream, hasPriority, dep
	clear(b.Fields) // drop the previous block's strings
	b.Fields = b.Fields[:0]
	b.Truncated, b.Invalid, b.sawRegular, b.open = false, false, false, false
	b.remain, b.remainTr = b.limit, b.limit
	b.dec.SetEmitEnabled(true)
}

// Fragment decodes one header block fragment (of the HEADERS frame, then
// of each CONTINUATION); done reports the end of the block. Errors are
// connection errors.
func (b *Block) Fragment(frag []byte, end bool) (done bool, err error) {
	// A peer far over the limit is not decoded further (CONTINUATION
	// flood): Framer.ReadMetaHeaders' rule.
	if int64(len(frag)) > 2*(int64(b.remain)+int64(b.remainTr)) || (b.Invalid && b.open) {
		return false, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if _, err := b.dec.Write(frag); err != nil {
		return false, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		b.open = true
		return false, nil
	}
	b.open = false
	if err := b.dec.Close(); err != nil {
		return false, http2.ConnectionError(http2.ErrCodeCompression)
	}
	return true, nil
}
