package h2frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"golang.org/x/net/http2"
)

// framesOf is a byte stream of the given frames.
func framesOf(write func(fr *http2.Framer)) []byte {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	fr.AllowIllegalWrites = true
	write(fr)
	return b.Bytes()
}

// seeds are frame streams of every kind Reader parses, well-formed and
// not, and of kinds it hands to the Framer.
func seeds() [][]byte {
	raw := func(typ http2.FrameType, flags http2.Flags, id uint32, p ...byte) func(fr *http2.Framer) {
		return func(fr *http2.Framer) { fr.WriteRawFrame(typ, flags, id, p) }
	}
	all := []func(fr *http2.Framer){
		func(fr *http2.Framer) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82, 0x86}, EndStream: true, EndHeaders: true})
		},
		func(fr *http2.Framer) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: []byte{0x82}, PadLength: 3,
				Priority: http2.PriorityParam{StreamDep: 1, Exclusive: true, Weight: 7}})
			fr.WriteContinuation(3, true, []byte{0x86})
		},
		func(fr *http2.Framer) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}})
			fr.WriteWindowUpdate(1, 5) // not a CONTINUATION
		},
		func(fr *http2.Framer) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}})
			fr.WriteContinuation(3, true, nil) // another stream
		},
		raw(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 1, 0x82), // unexpected
		raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 0, 0x82),
		raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersPadded, 1),
		raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersPadded, 1, 5, 0x82),
		raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersPriority, 1, 0, 0, 0, 1),
		raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersPriority|http2.FlagHeadersPadded, 1, 1, 0x80, 0, 0, 3, 9, 0x82, 0),
		func(fr *http2.Framer) { fr.WriteWindowUpdate(0, 1<<20); fr.WriteWindowUpdate(5, 1) },
		raw(http2.FrameWindowUpdate, 0, 0, 0, 0, 0, 0),
		raw(http2.FrameWindowUpdate, 0, 7, 0x80, 0, 0, 0),
		raw(http2.FrameWindowUpdate, 0, 7, 0, 0, 1),
		func(fr *http2.Framer) { fr.WriteRSTStream(1, http2.ErrCodeCancel) },
		raw(http2.FrameRSTStream, 0, 0, 0, 0, 0, 8),
		raw(http2.FrameRSTStream, 0, 1, 0, 0, 8),
		func(fr *http2.Framer) {
			fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
			fr.WritePing(true, [8]byte{})
		},
		raw(http2.FramePing, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8),
		raw(http2.FramePing, 0, 0, 1, 2, 3),
		func(fr *http2.Framer) {
			fr.WriteData(1, false, []byte("abc"))
			fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})
			fr.WriteGoAway(1, http2.ErrCodeNo, []byte("bye"))
			fr.WritePriority(3, http2.PriorityParam{StreamDep: 1, Weight: 3})
		},
		raw(http2.FrameType(0x42), 0, 1, 1, 2),
	}
	var out [][]byte
	for _, w := range all {
		out = append(out, framesOf(w))
	}
	return out
}

// describe is what a test compares of a frame: its header and what its
// kind carries.
func describe(f http2.Frame) string {
	switch f := f.(type) {
	case *http2.HeadersFrame:
		return fmt.Sprintf("%v prio=%v frag=%x", f.FrameHeader, f.Priority, f.HeaderBlockFragment())
	case *http2.ContinuationFrame:
		return fmt.Sprintf("%v frag=%x", f.FrameHeader, f.HeaderBlockFragment())
	case *http2.WindowUpdateFrame:
		return fmt.Sprintf("%v inc=%d", f.FrameHeader, f.Increment)
	case *http2.RSTStreamFrame:
		return fmt.Sprintf("%v code=%v", f.FrameHeader, f.ErrCode)
	case *http2.PingFrame:
		return fmt.Sprintf("%v data=%x", f.FrameHeader, f.Data)
	case *http2.DataFrame:
		return fmt.Sprintf("%v data=%x", f.FrameHeader, f.Data())
	}
	return fmt.Sprintf("%v", f.Header())
}

func describeOwn(f *Frame) string {
	if f.Other != nil {
		return describe(f.Other)
	}
	switch f.Type {
	case http2.FrameHeaders:
		return fmt.Sprintf("%v prio=%v frag=%x", f.FrameHeader, f.Priority, f.Fragment)
	case http2.FrameContinuation:
		return fmt.Sprintf("%v frag=%x", f.FrameHeader, f.Fragment)
	case http2.FrameWindowUpdate:
		return fmt.Sprintf("%v inc=%d", f.FrameHeader, f.Increment)
	case http2.FrameRSTStream:
		return fmt.Sprintf("%v code=%v", f.FrameHeader, f.ErrCode)
	case http2.FramePing:
		return fmt.Sprintf("%v data=%x", f.FrameHeader, f.Data)
	}
	return "?"
}

// errKind is how a connection treats a read error.
func errKind(err error) string {
	var ce http2.ConnectionError
	var se http2.StreamError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &ce):
		return "connection " + http2.ErrCode(ce).String()
	case errors.As(err, &se):
		return fmt.Sprintf("stream %d %v", se.StreamID, se.Code)
	case errors.Is(err, http2.ErrFrameTooLarge):
		return "too large"
	}
	return "read error"
}

// compare reads data with x/net's Framer alone and with Reader, frame by
// frame, until the first error, and fails when they differ in a frame, an
// error's kind, or what follows a stream error.
func compare(t *testing.T, data []byte) {
	want := http2.NewFramer(nil, bytes.NewReader(data))
	want.SetMaxReadFrameSize(1 << 10)
	r := bytes.NewReader(data)
	fr := http2.NewFramer(nil, r)
	fr.SetMaxReadFrameSize(1 << 10)
	fr.SetReuseFrames()
	var rd Reader
	rd.Reset(fr, r)
	for i := 0; ; i++ {
		wf, werr := want.ReadFrame()
		gf, gerr := rd.Read()
		if errKind(werr) != errKind(gerr) {
			t.Fatalf("frame %d: error %v (%s), want %v (%s)", i, gerr, errKind(gerr), werr, errKind(werr))
		}
		if werr != nil {
			var se http2.StreamError
			if errors.As(werr, &se) {
				continue // a stream error: the connection reads on
			}
			return
		}
		if w, g := describe(wf), describeOwn(gf); w != g {
			t.Fatalf("frame %d: %s, want %s", i, g, w)
		}
	}
}

// TestReaderMatchesFramer: frames of every kind Reader parses, and of
// those it passes on, read as x/net's Framer reads them, errors included.
func TestReaderMatchesFramer(t *testing.T) {
	for i, s := range seeds() {
		t.Run(fmt.Sprint(i), func(t *testing.T) { compare(t, s) })
	}
	big := framesOf(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: make([]byte, 2000), EndHeaders: true})
	})
	t.Run("too large", func(t *testing.T) { compare(t, big) })
}

// TestReaderAllocatesNothing: the frames every request brings cost no
// allocation once the buffer is grown.
func TestReaderAllocatesNothing(t *testing.T) {
	data := framesOf(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82, 0x86}})
		fr.WriteContinuation(1, true, []byte{0x84})
		fr.WriteWindowUpdate(0, 100)
		fr.WriteRSTStream(1, http2.ErrCodeCancel)
		fr.WritePing(false, [8]byte{})
		fr.WriteData(1, true, []byte("x"))
	})
	r := bytes.NewReader(data)
	fr := http2.NewFramer(nil, r)
	fr.SetReuseFrames()
	var rd Reader
	rd.Reset(fr, r)
	read := func() {
		r.Reset(data)
		for {
			if _, err := rd.Read(); err == io.EOF {
				return
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	read()
	if n := testing.AllocsPerRun(100, read); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}

// FuzzReader: any byte stream reads the same through Reader as through
// x/net's Framer.
func FuzzReader(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { compare(t, data) })
}
