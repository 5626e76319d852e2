package h2frame

import (
	"bufio"
	"encoding/binary"
	"errors"

	"golang.org/x/net/http2"
)

// errStreamID: a DATA frame needs a stream id from 1 to 2^31-1.
var errStreamID = errors.New("h2frame: DATA frame on an invalid stream id")

// maxPayload is the largest payload a frame header can state (24 bits).
const maxPayload = 1<<24 - 1

// WriteData writes a DATA frame without padding into w: its 9-byte header
// straight into w's buffer, then data, copied once. x/net's Framer stages a
// whole frame in a buffer of its own and copies that into w, so every byte
// a proxy forwards was copied twice on the way out. The caller keeps to
// the peer's SETTINGS_MAX_FRAME_SIZE and flow-control windows, as with
// Framer.WriteData.
func WriteData(w *bufio.Writer, streamID uint32, end bool, data []byte) error {
	if streamID == 0 || streamID > 1<<31-1 {
		return errStreamID
	}
	if len(data) > maxPayload {
		return http2.ErrFrameTooLarge
	}
	if w.Available() < 9 {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	var flags http2.Flags
	if end {
		flags = http2.FlagDataEndStream
	}
	n := len(data)
	h := append(w.AvailableBuffer(), byte(n>>16), byte(n>>8), byte(n), byte(http2.FrameData), byte(flags), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(h[5:], streamID)
	if _, err := w.Write(h); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}
