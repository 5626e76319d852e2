package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// ALPN is the protocol an mTLS connection between sidecars negotiates when
// both do Istio's TCP metadata exchange (the metadata_exchange network
// filter): each side then sends one frame before the stream's bytes.
const ALPN = "istio-peer-exchange"

// A frame is Istio's: the magic and the payload length (big-endian
// uint32s), then a google.protobuf.Any of a Struct holding the node
// metadata under x-envoy-peer-metadata and the node id under
// x-envoy-peer-metadata-id.
const (
	exchangeMagic = 0x3D230467
	headerLen     = 8
	// MaxExchangeLen bounds a peer's frame payload.
	MaxExchangeLen = 16 << 10
	// ExchangeTimeout bounds the wait for a peer's frame.
	ExchangeTimeout = 5 * time.Second
)

// EncodeExchange renders p as a metadata exchange frame.
func EncodeExchange(p *telemetry.Peer) []byte {
	st := &structpb.Struct{Fields: map[string]*structpb.Value{
		HeaderMetadata: structpb.NewStructValue(nodeStruct(p)),
	}}
	if p.ID != "" {
		st.Fields[HeaderMetadataID] = structpb.NewStringValue(p.ID)
	}
	a, err := anypb.New(st)
	if err != nil {
		panic(err)
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	if err != nil {
		panic(err)
	}
	out := make([]byte, headerLen, headerLen+len(body))
	binary.BigEndian.PutUint32(out, exchangeMagic)
	binary.BigEndian.PutUint32(out[4:], uint32(len(body)))
	return append(out, body...)
}

// DecodeExchange parses a frame's payload.
func DecodeExchange(body []byte) (*telemetry.Peer, error) {
	var a anypb.Any
	if err := proto.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("metadata exchange: %w", err)
	}
	var st structpb.Struct
	if !a.MessageIs(&st) {
		return nil, fmt.Errorf("metadata exchange: payload is %s, want google.protobuf.Struct", a.GetTypeUrl())
	}
	if err := a.UnmarshalTo(&st); err != nil {
		return nil, fmt.Errorf("metadata exchange: %w", err)
	}
	md := st.GetFields()[HeaderMetadata].GetStructValue()
	if md == nil {
		return nil, errors.New("metadata exchange: no " + HeaderMetadata)
	}
	p := FromNode(st.GetFields()[HeaderMetadataID].GetStringValue(), md)
	return &p, nil
}

// ErrNoExchange says the peer's first bytes are not a metadata exchange
// frame: the connection carries the stream from its first byte.
var ErrNoExchange = errors.New("metadata exchange: the peer sent no frame")

// ReadExchange reads the peer's frame from c, within ExchangeTimeout. It
// returns the connection to use from then on: c itself after a frame, or,
// when the first bytes are not one (ErrNoExchange), a connection that
// gives those bytes back first.
func ReadExchange(c net.Conn) (net.Conn, *telemetry.Peer, error) {
	c.SetReadDeadline(time.Now().Add(ExchangeTimeout))
	defer c.SetReadDeadline(time.Time{})
	var hdr [headerLen]byte
	n, err := io.ReadFull(c, hdr[:])
	if err != nil || binary.BigEndian.Uint32(hdr[:4]) != exchangeMagic {
		if n == 0 && err != nil {
			return c, nil, err
		}
		return &prefixConn{Conn: c, prefix: append([]byte(nil), hdr[:n]...)}, nil, ErrNoExchange
	}
	size := binary.BigEndian.Uint32(hdr[4:])
	if size > MaxExchangeLen {
		return c, nil, fmt.Errorf("metadata exchange: a %d-byte frame, more than %d", size, MaxExchangeLen)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		return c, nil, fmt.Errorf("metadata exchange: %w", err)
	}
	p, err := DecodeExchange(body)
	return c, p, err
}

// prefixConn reads prefix before the connection's own bytes.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// CloseWrite half-closes the connection when it can.
func (p *prefixConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return p.Conn.Close()
}
