package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Subcommands of dpbench that run the gRPC streaming peer processes.
const (
	StreamServeCmd = "stream-serve"
	StreamLoadCmd  = "stream-load"
)

// rawCodec passes messages through as bytes, so the benchmark's streaming
// service needs no generated code. It is named "proto" so the wire looks
// like any gRPC service (content-type application/grpc).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: marshal %T, want *[]byte", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: unmarshal into %T, want *[]byte", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

var streamDesc = grpc.StreamDesc{StreamName: streamMethod, ServerStreams: true, ClientStreams: true}

// NewStreamServer returns a gRPC server whose bidirectional streaming method
// /mast.bench.Echo/Stream echoes every message back.
func NewStreamServer() *grpc.Server {
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	desc := streamDesc
	desc.Handler = func(_ any, ss grpc.ServerStream) error {
		var msg []byte
		for {
			if err := ss.RecvMsg(&msg); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if err := ss.SendMsg(&msg); err != nil {
				return err
			}
		}
	}
	s.RegisterService(&grpc.ServiceDesc{ServiceName: streamService, HandlerType: (*any)(nil), Streams: []grpc.StreamDesc{desc}}, nil)
	return s
}

// streamGrace is how long past the run's end (and for the warm-up message)
// a stream may take before it counts as failed.
const streamGrace = 10 * time.Second

// StreamLoadConfig is one gRPC streaming run: Conns connections with one
// bidirectional stream each, sending Size-byte messages and waiting for
// each echo before the next (ping-pong), at QPS messages per second in all
// (0: as fast as echoes return).
type StreamLoadConfig struct {
	Addr      string
	Authority string
	Conns     int
	QPS       int
	Duration  time.Duration
	Size      int
}

// StreamLoad runs the load and returns its figures. Latency is from sending
// a message to receiving its echo; the first message of each stream (which
// opens it) is a warm-up and is not counted. A message sent late because
// the previous echo was slow is timed from its actual send, as fortio does.
func StreamLoad(ctx context.Context, cfg StreamLoadConfig) (LoadResult, error) {
	if cfg.Conns < 1 {
		return LoadResult{}, errors.New("stream load: need at least one connection")
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}))}
	if cfg.Authority != "" {
		opts = append(opts, grpc.WithAuthority(cfg.Authority))
	}
	type streamState struct {
		conn   *grpc.ClientConn
		stream grpc.ClientStream
	}
	payload := make([]byte, cfg.Size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	states := make([]streamState, cfg.Conns)
	defer func() {
		for _, s := range states {
			if s.conn != nil {
				s.conn.Close()
			}
		}
	}()
	// A proxy that accepts the stream but never forwards a message must not
	// hang the benchmark: every stream ends at the run's end plus a grace.
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration+streamGrace)
	defer cancel()
	for i := range states {
		conn, err := grpc.NewClient("passthrough:///"+cfg.Addr, opts...)
		if err != nil {
			return LoadResult{}, fmt.Errorf("stream load: dial %s: %w", cfg.Addr, err)
		}
		states[i].conn = conn
		st, err := conn.NewStream(runCtx, &streamDesc, streamFullName)
		if err != nil {
			return LoadResult{}, fmt.Errorf("stream load: open stream to %s: %w", cfg.Addr, err)
		}
		states[i].stream = st
		warm := make(chan error, 1)
		go func() {
			var echo []byte
			err := st.SendMsg(&payload)
			if err == nil {
				err = st.RecvMsg(&echo)
			}
			warm <- err
		}()
		select {
		case err := <-warm:
			if err != nil {
				return LoadResult{}, fmt.Errorf("stream load: warm-up message via %s: %w", cfg.Addr, err)
			}
		case <-time.After(streamGrace):
			return LoadResult{}, fmt.Errorf("stream load: warm-up message via %s: no echo after %s", cfg.Addr, streamGrace)
		}
	}
	var interval time.Duration
	if cfg.QPS > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Conns) / float64(cfg.QPS))
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		samples = make([]time.Duration, 0, 1<<16)
		errs    int64
		firstEr error
	)
	start := time.Now()
	end := start.Add(cfg.Duration)
	for i := range states {
		wg.Add(1)
		go func(st grpc.ClientStream, offset time.Duration) {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<12)
			var echo []byte
			var bad int64
			var lastErr error
			next := start.Add(offset)
			for {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
				}
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				err := st.SendMsg(&payload)
				if err == nil {
					err = st.RecvMsg(&echo)
				}
				if err == nil && len(echo) != len(payload) {
					err = fmt.Errorf("echo of %d bytes, sent %d", len(echo), len(payload))
				}
				if err != nil {
					bad++
					lastErr = err
					break // a broken stream cannot continue
				}
				local = append(local, time.Since(t0))
			}
			_ = st.CloseSend()
			mu.Lock()
			samples = append(samples, local...)
			errs += bad
			if firstEr == nil {
				firstEr = lastErr
			}
			mu.Unlock()
		}(states[i].stream, time.Duration(i)*interval/time.Duration(cfg.Conns))
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := LoadResult{Requests: int64(len(samples)), Errors: errs, DurationS: elapsed.Seconds(), Connection: cfg.Conns,
		QPS: float64(len(samples)) / elapsed.Seconds()}
	summarize(&r, samples)
	if len(samples) == 0 && firstEr != nil {
		return r, fmt.Errorf("stream load: %w", firstEr)
	}
	return r, nil
}

// ServeStream serves the streaming echo on addr until ctx ends.
func ServeStream(ctx context.Context, addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := NewStreamServer()
	go func() { <-ctx.Done(); s.Stop() }()
	return s.Serve(lis)
}

// parseStreamOutput reads the JSON LoadResult that stream-load prints.
func parseStreamOutput(s string) (LoadResult, error) {
	var r LoadResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &r); err != nil {
		return r, fmt.Errorf("stream-load output %q: %w", clip(s, 200), err)
	}
	return r, nil
}
